"""Gene panels and BED regions (varreinterp.panels).

The Python rule (`Panel.contains`) is the reference; the SQL forms (inline `sql_predicate`
and the macro made by `register`) must agree with it on every generated variant, including
multi-gene fields, mixed case, chr prefixes, region edges and REF spans crossing SQL bins."""

from __future__ import annotations

import gzip
from importlib.resources import files
from pathlib import Path

import duckdb
import pytest
from conftest import shared
from hypothesis import given, settings
from hypothesis import strategies as st

from varreinterp.errors import EnvironmentIOError, InputError, UsageError, VarreinterpError
from varreinterp.panels import (
    BIN_BITS,
    INLINE_REGION_ROWS,
    Panel,
    acmg_sf,
    build_panel,
    builtin_panel_names,
    gene_symbols,
    load_bed,
    load_gene_file,
    parse_genes_option,
    resolve_named_panel,
)

Row = tuple[str | None, int | None, str | None, str | None]


def sql_results(panel: Panel, rows: list[Row]) -> tuple[list[bool], list[bool]]:
    """The inline and the registered predicate, evaluated by DuckDB row by row."""
    con = duckdb.connect()
    con.execute("CREATE TABLE v (i INTEGER, chrom VARCHAR, pos BIGINT, ref VARCHAR, "
                "gene VARCHAR)")
    con.executemany("INSERT INTO v VALUES (?, ?, ?, ?, ?)",
                    [(i, *row) for i, row in enumerate(rows)])
    macro = panel.register(con, "p")
    inline = panel.sql_predicate("chrom", "pos", "ref", "gene")
    registered = panel.sql_predicate("chrom", "pos", "ref", "gene", registered=macro)
    out = con.execute(f"SELECT {inline}, {registered} FROM v ORDER BY i").fetchall()
    con.close()
    return [a for a, _ in out], [b for _, b in out]


def assert_agree(panel: Panel, rows: list[Row]) -> list[bool]:
    expected = [panel.contains(*row) for row in rows]
    inline, registered = sql_results(panel, rows)
    assert inline == expected
    assert registered == expected
    return expected


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- the ACMG SF list ------------------------------------------------------------------------

ACMG_DATA = files("varreinterp").joinpath("data/acmg_sf.txt").read_text(encoding="utf-8")


def test_acmg_sf_is_v33_with_its_stated_84_genes() -> None:
    panel = acmg_sf()
    assert panel.name == "acmg-sf-v3.3"
    assert panel.genes is not None and len(panel.genes) == 84
    assert "doi:10.1016/j.gim.2025.101454" in panel.description
    for gene in ("BRCA1", "BRCA2", "MLH1", "LDLR", "MYH7", "TTN", "CALM3", "PLN", "ABCD1"):
        assert gene in panel.genes
    for gene in ("CFTR", "CDH1", "ATP7A"):  # well-known genes that are not on the list
        assert gene not in panel.genes


def test_acmg_sf_file_has_no_duplicates_and_only_upper_case_symbols() -> None:
    symbols = [line.split("\t")[0] for line in ACMG_DATA.splitlines()
               if line and not line.startswith("#")]
    assert len(symbols) == 84
    assert len(set(symbols)) == len(symbols)
    assert all(s == s.upper() and s.isascii() for s in symbols)
    assert symbols == sorted(symbols)


def test_acmg_sf_header_gives_version_citation_doi_and_sources() -> None:
    header = "\n".join(line for line in ACMG_DATA.splitlines() if line.startswith("#"))
    for needle in ("ACMG SF v3.3", "Genet Med. 2025;27(8):101454", "10.1016/j.gim.2025.101454",
                   "PMID 40568962", "clingen-data-model/website-clinicalgenome-search",
                   "varfish-org/varfish-db-downloader"):
        assert needle in header


@pytest.mark.parametrize(("name", "count", "added"), [
    ("acmg-sf-v3.0", 73, set()),
    ("acmg-sf-v3.1", 78, {"BAG3", "DES", "RBM20", "TNNC1", "TTR"}),
    ("acmg-sf-v3.2", 81, {"CALM1", "CALM2", "CALM3"}),
    ("acmg-sf-v3.3", 84, {"ABCD1", "CYP27A1", "PLN"}),
])
def test_earlier_v3_lists_have_their_published_counts_and_additions(
        name: str, count: int, added: set[str]) -> None:
    versions = ["acmg-sf-v3.0", "acmg-sf-v3.1", "acmg-sf-v3.2", "acmg-sf-v3.3"]
    genes = acmg_sf(name).genes
    assert genes is not None and len(genes) == count
    i = versions.index(name)
    if i:
        previous = acmg_sf(versions[i - 1]).genes
        assert previous is not None
        assert previous <= genes  # nothing was removed
        assert genes - previous == added


def test_acmg_sf_by_name_in_the_genes_option() -> None:
    assert parse_genes_option("acmg-sf") == acmg_sf()
    assert parse_genes_option(" ACMG-SF ").genes == acmg_sf().genes
    assert parse_genes_option("acmg-sf-3.2").genes == acmg_sf("acmg-sf-v3.2").genes
    assert builtin_panel_names() == ["acmg-sf", "acmg-sf-v3.0", "acmg-sf-v3.1",
                                     "acmg-sf-v3.2", "acmg-sf-v3.3"]
    with pytest.raises(UsageError, match="acmg-sf-v9.*known: acmg-sf, acmg-sf-v3.0"):
        parse_genes_option("acmg-sf-v9")
    with pytest.raises(UsageError, match="built-in panel"):
        parse_genes_option("BRCA1,acmg-sf")


def test_built_in_name_wins_over_a_file_of_that_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "acmg-sf", "BRCA1\n")
    assert parse_genes_option("acmg-sf").name == "acmg-sf-v3.3"
    assert parse_genes_option("./acmg-sf").genes == frozenset({"BRCA1"})


# -- --genes: lists and files ----------------------------------------------------------------

def test_gene_list_is_upper_cased_and_deduplicated() -> None:
    panel = parse_genes_option("brca1, BRCA2,,Brca1")
    assert panel.genes == frozenset({"BRCA1", "BRCA2"})
    assert panel.description == "genes: BRCA1,BRCA2"


@pytest.mark.parametrize("value", [",", "", "  ", ", ,"])
def test_empty_gene_list_is_a_usage_error(value: str) -> None:
    with pytest.raises(UsageError, match="no gene symbol"):
        parse_genes_option(value)


def test_a_gene_list_item_that_is_no_symbol_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="'BRCA1:672'"):
        parse_genes_option("BRCA1:672,MLH1")


def test_gene_file_with_comments_columns_header_crlf_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "cardio.tsv"
    path.write_bytes(
        "\ufeffgene_symbol\tnote\r\n"
        "# cardiac genes\r\n"
        "\r\n"
        "myh7\tsarcomere  # inline comment\r\n"
        "MYBPC3,sarcomere\r\n"
        '"TTN" truncating only\r\n'
        "hla-a\r\n"
        "MYH7\r\n".encode())
    panel = load_gene_file(path)
    assert panel.genes == frozenset({"MYH7", "MYBPC3", "TTN", "HLA-A"})
    assert panel.description == f"genes file {path} (4 genes)"
    assert parse_genes_option(str(path)) == panel  # an existing path is a file


def test_gzip_gene_file(tmp_path: Path) -> None:
    path = tmp_path / "genes.txt.gz"
    path.write_bytes(gzip.compress(b"BRCA1\nBRCA2\n"))
    assert load_gene_file(path).genes == frozenset({"BRCA1", "BRCA2"})


def test_an_existing_file_wins_over_a_gene_list(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "BRCA1", "MLH1\n")  # a file whose name looks like a symbol
    assert parse_genes_option("BRCA1").genes == frozenset({"MLH1"})
    assert parse_genes_option("BRCA2").genes == frozenset({"BRCA2"})


@pytest.mark.parametrize("value", ["panels/missing.txt", "missing.tsv", "missing.txt.gz"])
def test_a_missing_genes_file_is_an_input_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="genes file not found") as info:
        parse_genes_option(value)
    assert info.value.path == value


def test_an_empty_genes_file_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path / "empty.txt", "# only a comment\n\n")
    with pytest.raises(InputError, match="no gene symbols") as info:
        load_gene_file(path)
    assert info.value.path == str(path)


def test_a_bad_symbol_in_a_genes_file_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.txt", "BRCA1\nBRCA2\nMLH1|PMS2\n")
    with pytest.raises(InputError, match="'MLH1|PMS2' is not a gene symbol") as info:
        load_gene_file(path)
    assert (info.value.path, info.value.line) == (str(path), 3)


def test_a_genes_file_that_is_a_directory_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentIOError):
        load_gene_file(tmp_path)


def test_binary_genes_file_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "genes.txt"
    path.write_bytes(b"BRCA1\n\xff\xfe\x00\n")
    with pytest.raises(InputError, match="not UTF-8"):
        load_gene_file(path)


# -- gene matching ----------------------------------------------------------------------------

def test_any_symbol_of_a_multi_gene_field_matches() -> None:
    panel = parse_genes_option("MLH1,brca2")
    rows: list[Row] = [
        ("1", 1, "A", "MLH1|EPM2AIP1"), ("1", 1, "A", "EPM2AIP1|mlh1"),
        ("1", 1, "A", "BRCA2;LOC1"), ("1", 1, "A", "X, Brca2"), ("1", 1, "A", "EPM2AIP1"),
        ("1", 1, "A", None), ("1", 1, "A", ""), ("1", 1, "A", "MLH11"), ("1", 1, "A", "|"),
        ("1", 1, "A", "ML H1"),
    ]
    assert assert_agree(panel, rows) == [True, True, True, True, False, False, False, False,
                                         False, True]


def test_non_ascii_symbols_never_match_even_where_upper_maps_them_to_ascii() -> None:
    # DuckDB's upper() turns the dotless i into I and Python's turns sharp s into SS.
    panel = parse_genes_option("I,ASS1")
    rows: list[Row] = [("1", 1, "A", "\u0131"), ("1", 1, "A", "a\u00df1"),
                       ("1", 1, "A", "i"), ("1", 1, "A", "ass1")]
    assert assert_agree(panel, rows) == [False, False, True, True]
    assert gene_symbols("a\u00df1| mlh1 ;x") == ["a\u00df1", "MLH1", "X"]


# -- BED regions ------------------------------------------------------------------------------

def test_bed_parsing_skips_headers_and_merges(tmp_path: Path) -> None:
    path = write(tmp_path / "kit.bed",
                 "track name=kit\nbrowser position chr1:1-100\n# comment\n\n"
                 "chr1\t100\t200\tname\t0\t+\n"
                 "1\t150\t250\n"          # overlaps the first: merged
                 "chr1\t250\t260\n"       # adjacent: merged
                 "chr1\t300\t300\n"       # empty: dropped
                 "chrM 10 20\n"           # space-separated
                 "MT\t15\t30\n"
                 "chrX\t5\t6\n")
    panel = load_bed(path)
    assert panel.regions == (("1", ((100, 260),)), ("MT", ((10, 30),)), ("X", ((5, 6),)))
    assert panel.description == f"regions {path} (7 regions, 3 after merging)"
    assert (panel.interval_count, panel.bases) == (3, 181)


def test_gzip_bed(tmp_path: Path) -> None:
    path = tmp_path / "kit.bed.gz"
    path.write_bytes(gzip.compress(b"chr2\t0\t10\n"))
    assert load_bed(path).regions == (("2", ((0, 10),)),)


@pytest.mark.parametrize(("line", "message"), [
    ("chr1\tx\t200", "start 'x' is not a non-negative integer"),
    ("chr1\t-5\t200", "start '-5' is not a non-negative integer"),
    ("chr1\t100\t2e3", "end '2e3' is not a non-negative integer"),
    ("chr1\t300\t200", "start 300 is after end 200"),
    ("chr1\t100", "expected at least 3 columns"),
    ("chr1", "expected at least 3 columns"),
])
def test_bad_bed_lines_name_the_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path / "bad.bed", f"#header\nchr1\t1\t2\n{line}\nchr1\t5\t6\n")
    with pytest.raises(InputError) as info:
        load_bed(path)
    assert message in str(info.value)
    assert (info.value.path, info.value.line) == (str(path), 3)


@pytest.mark.parametrize("text", ["", "track name=x\n# nothing\n", "chr1\t5\t5\n"])
def test_a_bed_without_regions_is_an_input_error(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "empty.bed", text)
    with pytest.raises(InputError, match="empty|no regions"):
        load_bed(path)


def test_a_missing_or_damaged_bed_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="BED file not found"):
        load_bed(tmp_path / "missing.bed")
    damaged = tmp_path / "cut.bed.gz"
    damaged.write_bytes(gzip.compress(b"chr1\t1\t2\n" * 100)[:30])
    with pytest.raises(InputError, match="damaged gzip"):
        load_bed(damaged)


def test_region_edges_in_python_and_sql(tmp_path: Path) -> None:
    # BED chr1:100-200 covers 1-based positions 101..200.
    panel = load_bed(write(tmp_path / "r.bed", "chr1\t100\t200\n"))
    rows: list[Row] = [
        ("chr1", 100, "A", None),    # the BED start itself: outside
        ("chr1", 101, "A", None),    # first base: inside
        ("1", 200, "A", None),       # last base: inside
        ("CHR1", 201, "A", None),    # one past the end: outside
        ("chr1", 98, "AAA", None),   # deletion covering 98..100: ends just before
        ("chr1", 98, "AAAA", None),  # deletion reaching 101: inside
        ("chr1", 201, "", None),     # empty REF counts as one base
        ("chr2", 150, "A", None),    # other contig
        (None, 150, "A", None),
        ("chr1", None, "A", None),
        ("chr1", 150, None, None),   # NULL REF counts as one base
    ]
    assert assert_agree(panel, rows) == [False, True, True, False, False, True, False,
                                         False, False, False, True]


def test_mitochondrion_names_match_each_other(tmp_path: Path) -> None:
    panel = load_bed(write(tmp_path / "mt.bed", "chrM\t0\t16569\n"))
    rows: list[Row] = [("MT", 1, "A", None), ("chrMT", 73, "A", None), ("M", 16569, "A", None),
                       ("chrM", 16570, "A", None)]
    assert assert_agree(panel, rows) == [True, True, True, False]


def test_quotes_in_contig_names_are_quoted_in_sql(tmp_path: Path) -> None:
    panel = load_bed(write(tmp_path / "q.bed", "odd'contig\t0\t10\n"))
    rows: list[Row] = [("odd'contig", 5, "A", None), ("odd", 5, "A", None)]
    assert assert_agree(panel, rows) == [True, False]


def test_long_deletion_crosses_bins(tmp_path: Path) -> None:
    bin_size = 1 << BIN_BITS
    panel = load_bed(write(tmp_path / "far.bed", f"chr1\t{5 * bin_size + 7}\t{5 * bin_size + 9}\n"))
    long_ref = "A" * (4 * bin_size)
    rows: list[Row] = [("1", 2 * bin_size, long_ref, None),             # ends in bin 5 + 8 bases
                       ("1", bin_size + 8, long_ref, None),            # ends just before
                       ("1", 5 * bin_size + 8, "A", None)]
    assert assert_agree(panel, rows) == [True, False, True]


# -- genes and regions together ---------------------------------------------------------------

def test_genes_and_regions_together_are_an_intersection(tmp_path: Path) -> None:
    bed = write(tmp_path / "r.bed", "chr13\t100\t200\n")
    panel = build_panel("BRCA2", bed)
    assert panel is not None
    assert panel.description == f"genes: BRCA2 AND regions {bed} (1 region)"
    rows: list[Row] = [("13", 150, "A", "BRCA2"), ("13", 150, "A", "BRCA1"),
                       ("13", 500, "A", "BRCA2"), ("13", 150, "A", None)]
    assert assert_agree(panel, rows) == [True, False, False, False]
    assert build_panel(None, None) is None


def test_intersections_that_share_nothing_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="share no gene"):
        parse_genes_option("BRCA1").intersect(parse_genes_option("BRCA2"))
    a = load_bed(write(tmp_path / "a.bed", "chr1\t0\t10\n"))
    b = load_bed(write(tmp_path / "b.bed", "chr1\t10\t20\n"))
    with pytest.raises(UsageError, match="do not overlap"):
        a.intersect(b)
    c = load_bed(write(tmp_path / "c.bed", "chr1\t5\t15\nchr2\t0\t5\n"))
    assert a.intersect(c).regions == (("1", ((5, 10),)),)


def test_named_panels_from_the_config(tmp_path: Path) -> None:
    bed = write(tmp_path / "r.bed", "chr17\t0\t100\n")
    genes_file = write(tmp_path / "g.txt", "brca1\n")
    by_list = Panel.from_parts("hboc", ["brca1", "BRCA2"], [("chr17", 0, 100)])
    assert by_list.name == "hboc"
    assert by_list.description == "panel hboc: genes: BRCA1,BRCA2 AND regions: 1 interval"
    assert by_list.contains("17", 50, "A", "BRCA1") and not by_list.contains("17", 500, "A",
                                                                             "BRCA1")
    assert Panel.from_parts("x", "BRCA1,BRCA2", str(bed)).regions == by_list.regions
    assert Panel.from_parts("x", genes_file, None).genes == frozenset({"BRCA1"})
    assert Panel.from_parts("sf", "acmg-sf-v3.2", None).genes == acmg_sf("acmg-sf-v3.2").genes
    with pytest.raises(UsageError, match="neither genes nor regions"):
        Panel.from_parts("x", None, None)
    with pytest.raises(UsageError, match="panel x: no gene symbol"):
        Panel.from_parts("x", [], None)
    with pytest.raises(UsageError, match="bad region"):
        Panel.from_parts("x", None, [("chr1", 10, 5)])
    panels = {"hboc": by_list}
    assert resolve_named_panel("hboc", panels) is by_list
    assert resolve_named_panel("ACMG-SF", panels).name == "acmg-sf-v3.3"
    with pytest.raises(UsageError, match="unknown panel 'cardio'; known: hboc, acmg-sf"):
        resolve_named_panel("cardio", panels)


# -- provenance -------------------------------------------------------------------------------

def test_provenance_identifies_the_content(tmp_path: Path) -> None:
    a = parse_genes_option("brca2,BRCA1")
    b = load_gene_file(write(tmp_path / "g.txt", "BRCA1\nBRCA2\n"))
    assert a.sha256 == b.sha256  # same genes, different source
    assert a.sha256 != parse_genes_option("BRCA1").sha256
    assert a.summary() == f"genes: BRCA1,BRCA2 [panel sha256 {a.sha256[:12]}]"
    assert a.facts() == (("panel", "genes: BRCA1,BRCA2"), ("panel_sha256", a.sha256))
    bed = load_bed(write(tmp_path / "r.bed", "chr1\t0\t10\nchr2\t5\t8\n"))
    assert bed.to_json() == {
        "name": "r.bed", "description": f"regions {tmp_path / 'r.bed'} (2 regions)",
        "sha256": bed.sha256, "genes": None,
        "regions": {"intervals": 2, "bases": 13, "contigs": ["1", "2"]}}
    assert acmg_sf().to_json()["genes"][:3] == ["ABCD1", "ACTA2", "ACTC1"]


def test_long_gene_lists_are_abbreviated_in_descriptions_only() -> None:
    genes = [f"G{i}" for i in range(30)]
    panel = parse_genes_option(",".join(genes))
    assert panel.name == "30 genes"
    assert panel.description.endswith(",... (30 genes)")
    assert len(panel.to_json()["genes"]) == 30


# -- SQL specifics ----------------------------------------------------------------------------

def test_big_region_sets_must_be_registered(tmp_path: Path) -> None:
    lines = "".join(f"chr1\t{i * 100}\t{i * 100 + 10}\n" for i in range(INLINE_REGION_ROWS + 1))
    panel = load_bed(write(tmp_path / "big.bed", lines))
    with pytest.raises(VarreinterpError, match="register"):
        panel.sql_predicate("chrom", "pos", "ref", "gene")
    con = duckdb.connect()
    macro = panel.register(con, "order")  # an SQL keyword works: names get a prefix
    got = con.execute(f"SELECT {macro}('chr1', 5, 'A', NULL), {macro}('chr1', 15, 'A', NULL), "
                      f"{macro}('chr1', {INLINE_REGION_ROWS * 100 + 1}, 'A', NULL)").fetchone()
    assert got == (True, False, True)
    with pytest.raises(VarreinterpError, match="not a SQL identifier"):
        panel.register(con, "x; DROP TABLE y")


def test_predicate_is_never_null_so_its_negation_is_the_complement() -> None:
    panel = parse_genes_option("BRCA1")
    con = duckdb.connect()
    pred = panel.sql_predicate("chrom", "pos", "ref", "gene")
    rows = con.execute(f"SELECT count(*) FILTER ({pred}), count(*) FILTER (NOT {pred}) FROM "
                       "(VALUES ('1', 1, 'A', 'BRCA1'), (NULL, NULL, NULL, NULL), "
                       "('1', 1, 'A', 'x')) t(chrom, pos, ref, gene)").fetchone()
    assert rows == (1, 2)


# -- Python and SQL agree on generated variants -----------------------------------------------

CONTIGS = ["1", "chr1", "Chr1", "2", "chr2", "X", "chrX", "M", "MT", "chrM", "chrMT", "Un_x"]
GENES = ["BRCA1", "MLH1", "EPM2AIP1", "TTN", "HLA-A", "C4ORF33"]
BIN = 1 << BIN_BITS

coordinates = st.one_of(st.integers(0, 400),
                        st.integers(-3, 3).map(lambda d: 2 * BIN + d),
                        st.integers(0, 3 * BIN))
token = st.one_of(st.sampled_from(GENES), st.sampled_from(["LOC1", "", "x", "\u0131", " "]))
cased = st.tuples(token, st.sampled_from([str.upper, str.lower, str.title])).map(
    lambda t: t[1](t[0]))
gene_field = st.one_of(st.none(), st.lists(cased, min_size=1, max_size=4).flatmap(
    lambda tokens: st.sampled_from(["|", ";", ",", " | "]).map(lambda sep: sep.join(tokens))))
ref = st.one_of(st.none(), st.text("ACGTN", max_size=40),
                st.integers(BIN - 2, BIN + 2).map(lambda n: "A" * n))
variant = st.tuples(st.one_of(st.none(), st.sampled_from(CONTIGS)),
                    st.one_of(st.none(), coordinates.map(lambda x: x + 1)), ref, gene_field)
region = st.tuples(st.sampled_from(CONTIGS), coordinates, st.integers(0, 60)).map(
    lambda r: (r[0], r[1], r[1] + r[2]))


@st.composite
def panels(draw: st.DrawFn) -> Panel:
    kind = draw(st.sampled_from(["genes", "regions", "both"]))
    genes = draw(st.lists(st.sampled_from(GENES), min_size=1, max_size=4)) \
        if kind != "regions" else None
    regions = draw(st.lists(region, min_size=1, max_size=8).filter(
        lambda rs: any(e > s for _, s, e in rs))) if kind != "genes" else None
    return Panel.from_parts("generated", genes, regions)


@settings(max_examples=60, deadline=None)
@given(panel=panels(), rows=st.lists(variant, min_size=1, max_size=25))
def test_python_and_sql_agree(panel: Panel, rows: list[Row]) -> None:
    assert_agree(panel, rows)


# -- real data --------------------------------------------------------------------------------

def test_real_clinvar_gene_fields_agree() -> None:
    """GENEINFO of a real ClinVar release, reduced to symbols as the importer does."""
    path = shared("clinvar/GRCh37/clinvar_20230710.chr1_69k-981k.vcf.gz")
    rows: list[Row] = []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            chrom, pos, _, ref, _, _, _, info = line.split("\t")[:8]
            fields = dict(f.split("=", 1) for f in info.split(";") if "=" in f)
            geneinfo = fields.get("GENEINFO")
            symbols = "|".join(g.split(":")[0] for g in geneinfo.split("|")) if geneinfo else None
            rows.append((chrom, int(pos), ref, symbols))
    assert any(g and "|" in g for _, _, _, g in rows)  # the file has multi-gene fields
    panel = parse_genes_option("samd11,NOC2L")
    found = assert_agree(panel, rows)
    assert 0 < sum(found) < len(rows)
