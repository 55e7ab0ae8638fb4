"""The compiled VCF scanner behind `snapshot add` (varreinterp/_vcfscan.c, vcfscan.py).

Three checks: the scanner agrees with a plain-Python reading of the same rule on random lines;
it refuses each malformed line with its number; and `snapshot add` stores exactly the same
snapshot with the scanner as with the SQL reader it replaced (kept for machines without a C
compiler), on real ClinVar releases and on the generated ones."""

from __future__ import annotations

import gzip
from pathlib import Path

import duckdb
import pysam
import pytest
from builders import CLINVAR_HEADER, write_clinvar
from conftest import SAMPLES, SHARED, invoke
from hypothesis import given, settings
from hypothesis import strategies as st

from varreinterp import vcfscan
from varreinterp.linescan import LineError

pytestmark = pytest.mark.skipif(not vcfscan.available(),
                                reason="the compiled scanner was not built (no C compiler)")

KEYS = ["CLNSIG", "CLNREVSTAT", "CLNSIGCONF", "CLNDN", "MC", "GENEINFO"]


def python_value(info: str, key: str) -> str:
    """The rule, read plainly: the text after the first ';KEY=' of ';' + INFO, up to ';'."""
    _, found, rest = (";" + info).partition(f";{key}=")
    return rest.split(";", 1)[0] if found else ""


def scan(text: str, ncols: int = 8, keys: list[str] = KEYS) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = vcfscan.scan_batch(text.encode(), ncols, keys).to_pylist()
    return rows


# Entries built from the keys themselves, their prefixes and extensions, '=' and ',' inside
# values, flags without '=', empty entries and repeats: the cases a substring rule gets wrong.
_entry = st.one_of(
    st.tuples(st.sampled_from(KEYS + ["CLN", "CLNSIGX", "XCLNSIG", "M", "MCC", "ONC"]),
              st.sampled_from(["=", ""]),
              st.text("ab,=_|:.-", max_size=6)).map("".join),
    st.text("ab=;", max_size=3),
)
_info = st.lists(_entry, max_size=8).map(";".join)


@settings(max_examples=400, deadline=None)
@given(infos=st.lists(_info, min_size=1, max_size=5))
def test_info_values_follow_the_rule(infos: list[str]) -> None:
    lines = [f"chr{i}\t{i + 1}\tid{i}\tA\tC\t.\t.\t{info}" for i, info in enumerate(infos)]
    rows = scan("\n".join(lines) + "\n")
    assert len(rows) == len(infos)
    for i, (row, info) in enumerate(zip(rows, infos, strict=True)):
        assert (row["chrom"], row["pos"], row["id"]) == (f"chr{i}", i + 1, f"id{i}")
        for key in KEYS:
            assert row[vcfscan.info_column(key)] == python_value(info, key), (info, key)


def test_fixed_columns_and_blank_lines() -> None:
    text = ("1\t100\trs1\tacgT\tG,T\t50\tPASS\tCLNSIG=Benign\n\n"
            "MT\t2147483647\t.\tN\t<DEL>\t.\t.\t.\n"
            "chrX\t007\tx\tA\tC\t.\t.\tCLNDN=Caf\u00e9_syndrome;CLNSIG=Pathogenic\n")
    rows = scan(text)
    assert [(r["chrom"], r["pos"], r["id"], r["ref"], r["alt"]) for r in rows] == [
        ("1", 100, "rs1", "acgT", "G,T"), ("MT", 2147483647, ".", "N", "<DEL>"),
        ("chrX", 7, "x", "A", "C")]
    assert rows[2][vcfscan.info_column("CLNDN")] == "Caf\u00e9_syndrome"  # UTF-8 is kept
    assert scan("") == []


def test_extra_columns_are_counted_not_read() -> None:
    rows = scan("1\t5\t.\tA\tC\t.\t.\tCLNSIG=Benign\tGT\t0/1\n", ncols=10)
    assert rows[0][vcfscan.info_column("CLNSIG")] == "Benign"


GOOD = "1\t100\t.\tA\tG\t.\t.\tCLNSIG=Benign\n"


@pytest.mark.parametrize(("line", "message"), [
    ("1\t100\t.\tA\n", "expected 8 tab-separated columns, found 4"),
    ("1\t100\t.\tA\tG\t.\t.\tCLNSIG=Benign\textra\n", "found 9"),
    ("1\t0\t.\tA\tG\t.\t.\t.\n", "POS='0'"),
    ("1\t+5\t.\tA\tG\t.\t.\t.\n", "POS='+5'"),
    ("1\t1.5\t.\tA\tG\t.\t.\t.\n", "POS='1.5'"),
    ("1\t2147483648\t.\tA\tG\t.\t.\t.\n", "POS='2147483648'"),
    ("1\t00000000001\t.\tA\tG\t.\t.\t.\n", "POS='00000000001'"),
    ("1\t\t.\tA\tG\t.\t.\t.\n", "POS=''"),
    ("1\t 5\t.\tA\tG\t.\t.\t.\n", "POS=' 5'"),
    ("\t5\t.\tA\tG\t.\t.\t.\n", "CHROM=''"),
    ("1\t5\t.\t\tG\t.\t.\t.\n", "REF=''"),
    ("1\t5\t.\tA\tG\t.\t.\tCLNDN=a\0b\n", "a NUL byte"),
])
def test_malformed_line_is_refused_with_its_number(line: str, message: str) -> None:
    text = (GOOD * 3 + "\n" + line + GOOD).encode()
    with pytest.raises(LineError) as info:
        vcfscan.scan_batch(text, 8, KEYS)
    assert info.value.line == 4  # 0-based, the blank line counted
    assert message in info.value.message


def test_invalid_utf8_is_refused_with_its_line() -> None:
    text = GOOD.encode() * 2 + b"1\t5\t.\tA\tG\t.\t.\tCLNDN=\xff\n"
    with pytest.raises(LineError) as info:
        vcfscan.scan_batch(text, 8, KEYS)
    assert (info.value.line, info.value.message) == (2, "not a text file (invalid UTF-8)")


# ---------------------------------------------------------------- the two import paths agree
def _snapshot(store: Path) -> tuple[list[tuple[object, ...]], list[str]]:
    """Every row of the store's one snapshot (in a stable order) and its name."""
    (folder,) = (store / "snapshots").iterdir()
    with duckdb.connect() as con:
        rows = con.execute(f"SELECT * FROM read_parquet('{folder / 'variants.parquet'}') "
                           "ORDER BY ALL").fetchall()
    return rows, [folder.name]


def _both_paths(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                *extra: str) -> tuple[tuple[int, str, object], tuple[int, str, object]]:
    results = []
    for label in ("scanner", "sql"):
        if label == "sql":
            monkeypatch.setattr(vcfscan, "_vcfscan", None)
        store = tmp_path / label
        res = invoke(store, "snapshot", "add", path, *extra)
        rows = _snapshot(store) if res.code == 0 else None
        results.append((res.code, res.err, rows))
    monkeypatch.undo()
    return results[0], results[1]


def _real_releases() -> list[Path]:
    found = sorted((SHARED / "clinvar").glob("GRCh3*/clinvar_*.vcf*"))
    found += sorted((SHARED / "clinvar" / "custom_format").glob("*.vcf"))
    return [p for p in found if not p.name.endswith(".tbi")]


@pytest.mark.parametrize("release", _real_releases() or [None], ids=lambda p: p and p.name)
def test_real_releases_import_the_same_with_and_without_the_scanner(
        release: Path | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if release is None:
        pytest.skip(f"real test data not available: {SHARED / 'clinvar'} is absent")
    scanner, sql = _both_paths(release, tmp_path, monkeypatch, "--assembly",
                               "GRCh37" if "GRCh37" in str(release) else "GRCh38")
    assert scanner[0] == sql[0]
    if scanner[0] == 0:
        assert scanner[2] is not None and scanner[2][0], "a real release stored no row"
        assert scanner == sql  # rows, name and the summary on stderr


@pytest.mark.parametrize("release", sorted(SAMPLES.glob("clinvar_*.vcf")), ids=lambda p: p.name)
def test_sample_releases_import_the_same_with_and_without_the_scanner(
        release: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scanner, sql = _both_paths(release, tmp_path, monkeypatch)
    assert scanner[0] == 0
    assert scanner == sql


def test_large_bgzip_release_imports_the_same(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Many chunks (lines cut between BGZF groups, both cores), skipped and duplicate rows."""
    records = []
    for i in range(60_000):
        alt = "<DEL>" if i % 997 == 0 else ("G,T" if i % 991 == 0 else "G")
        pos = 1000 + 3 * (i // 2) if i % 500 == 0 else 1000 + 3 * i  # some repeated keys
        records.append(("chr1", pos, "A", alt, "Pathogenic" if i % 3 else "Benign",
                        i % 4, f"G{i % 40}", f"Disease_{i % 13}_{'y' * (i % 50)}"))
    plain = write_clinvar(tmp_path / "clinvar_20240303.vcf", records)
    packed = tmp_path / "clinvar_20240303.vcf.gz"
    pysam.tabix_compress(str(plain), str(packed), force=True)
    scanner, sql = _both_paths(packed, tmp_path, monkeypatch)
    assert scanner[0] == 0
    assert "symbolic_alt=" in scanner[1] and "duplicate_allele_key" in scanner[1]
    assert scanner == sql


def test_duplicate_keys_keep_the_same_row_whatever_the_file_order(tmp_path: Path) -> None:
    """Ties between rows of one allele end on their content, not on the order they arrive."""
    one = ("1", 500, "A", "G", "Pathogenic", 1, "GENE1", "First_disease")
    two = ("1", 500, "A", "G", "Pathogenic", 1, "GENE1", "Second_disease")
    kept = []
    for name, records in (("a", [one, two]), ("b", [two, one])):
        path = write_clinvar(tmp_path / f"{name}.vcf", records)
        text = path.read_text().replace("\t101\t", "\t7\t").replace("\t102\t", "\t7\t")
        path.write_text(text)  # the same variation id: a true tie before the content
        res = invoke(tmp_path / name, "snapshot", "add", path, "--name", "x")
        assert res.code == 0, res.err
        kept.append(_snapshot(tmp_path / name)[0])
    assert kept[0] == kept[1]
    assert len(kept[0]) == 1


@pytest.mark.parametrize("blank_before", [False, True])
@pytest.mark.parametrize("damage", ["columns", "pos", "contig"])
def test_malformed_release_names_the_same_line_on_both_paths(
        damage: str, blank_before: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The line named is the damaged one, also after blank lines (which both readers skip)."""
    records = [("1", 100 + i, "A", "G", "Benign", 2, None, None) for i in range(50)]
    path = write_clinvar(tmp_path / "clinvar_20240303.vcf", records)
    lines = path.read_text().split("\n")
    bad = CLINVAR_HEADER.count("\n") + 30  # 1-based line of the 30th record
    if blank_before:
        lines[bad - 3:bad - 3] = ["", ""]  # two blank lines a little before it
        bad += 2
    fields = lines[bad - 1].split("\t")
    if damage == "columns":
        fields = fields[:5]
    elif damage == "pos":
        fields[1] = "12e3"
    else:
        fields[0] = "chr"  # names no contig once 'chr' is taken off
    lines[bad - 1] = "\t".join(fields)
    path.write_text("\n".join(lines))
    packed = tmp_path / "clinvar_20240303.vcf.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))  # plain gzip: inflated first
    for source in (path, packed):
        scanner, sql = _both_paths(source, tmp_path / f"stores{source.suffix}", monkeypatch)
        for code, err, _ in (scanner, sql):
            assert code == 3
            assert f"{source}:{bad}:" in err, err
            if damage != "columns":
                assert f"CHROM={fields[0]!r} POS={fields[1]!r}" in err, err


def test_a_chrom_line_of_seven_columns_is_refused_on_its_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "clinvar_20240303.vcf"
    path.write_text("##fileformat=VCFv4.1\n##reference=GRCh38\n"
                    '##INFO=<ID=CLNSIG,Number=.,Type=String,Description="x">\n'
                    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\n1\t100\t.\tA\tG\t.\t.\n")
    scanner, sql = _both_paths(path, tmp_path, monkeypatch)
    for code, err, _ in (scanner, sql):
        assert code == 3
        assert f"{path}:4: the #CHROM line names 7 columns" in err


@pytest.mark.parametrize(("odd", "message"), [("\r", "stray carriage return (CR) inside a line"),
                                              ("\0", "a NUL byte inside a line")])
@pytest.mark.parametrize("packing", ["plain", "bgzip"])
def test_a_lone_cr_in_the_header_is_refused_not_a_hidden_record(
        packing: str, odd: str, message: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A CR alone once counted as a header line end there and hid the first record; a NUL
    in the header was refused by the SQL reader only."""
    path = write_clinvar(tmp_path / "clinvar_20240303.vcf",
                         [("1", 100, "A", "G", "Pathogenic", 2, None, None),
                          ("1", 200, "C", "T", "Benign", 2, None, None)])
    path.write_text(path.read_text().replace("##source=ClinVar\n", f"##source=ClinVar{odd}##x=y\n"))
    if packing == "bgzip":
        packed = tmp_path / "clinvar_20240303.vcf.gz"
        pysam.tabix_compress(str(path), str(packed), force=True)
        path = packed
    scanner, sql = _both_paths(path, tmp_path, monkeypatch)
    for code, err, _ in (scanner, sql):
        assert code == 3
        assert f"{path}:3: {message}" in err


def test_a_header_ending_in_a_lone_cr_is_refused(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "clinvar_20240303.vcf"
    path.write_text(CLINVAR_HEADER.format(date="2024-03-03", assembly="GRCh38")[:-1] + "\r")
    last = CLINVAR_HEADER.count("\n")
    scanner, sql = _both_paths(path, tmp_path, monkeypatch)
    for code, err, _ in (scanner, sql):
        assert code == 3
        assert f"{path}:{last}: stray carriage return (CR)" in err, err


def test_undeclared_geneinfo_empty_id_and_empty_alt(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Genes are read even when the header does not declare GENEINFO (else the variant falls
    outside every gene panel); an empty ID is no identifier, an empty ALT is skipped, on both
    paths alike, and a duplicate without an ID loses to the one with it."""
    head = CLINVAR_HEADER.format(date="2024-03-03", assembly="GRCh38")
    head = "".join(line for line in head.splitlines(keepends=True) if "GENEINFO" not in line)
    rows = ["1\t100\t\tA\tG\t.\t.\tCLNSIG=Pathogenic;CLNREVSTAT=reviewed_by_expert_panel;"
            "GENEINFO=BRCA1:672;CLNDN=Empty_id_row",
            "1\t100\t5\tA\tG\t.\t.\tCLNSIG=Pathogenic;CLNREVSTAT=reviewed_by_expert_panel;"
            "GENEINFO=BRCA1:672;CLNDN=Id_row",
            "1\t200\t6\tC\t\t.\t.\tCLNSIG=Benign;CLNREVSTAT=reviewed_by_expert_panel",
            "1\t300\t\tG\tT\t.\t.\tCLNSIG=Benign;CLNREVSTAT=reviewed_by_expert_panel;"
            "GENEINFO=TP53:7157|WRAP53:55135"]
    path = tmp_path / "clinvar_20240303.vcf"
    path.write_text(head + "\n".join(rows) + "\n")
    scanner, sql = _both_paths(path, tmp_path, monkeypatch)
    assert scanner == sql
    assert scanner[0] == 0 and "alt_missing=1" in scanner[1]
    with duckdb.connect() as con:
        (folder,) = (tmp_path / "scanner" / "snapshots").iterdir()
        got = con.execute(f"SELECT pos, gene, variation_id, conditions FROM read_parquet("
                          f"'{folder / 'variants.parquet'}') ORDER BY pos").fetchall()
    assert got == [(100, "BRCA1", "5", "Id_row"), (300, "TP53|WRAP53", None, None)]


def test_a_module_built_from_older_source_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """An editable install updated without a rebuild keeps an old _vcfscan: its functions may
    take other arguments, so the readers it would serve fall back to SQL and numpy."""
    import importlib
    import sys
    import types

    import varreinterp

    old = types.ModuleType("varreinterp._vcfscan")
    old.scan = lambda *args: None  # type: ignore[attr-defined]  # ABI 1: no constant, no prefilter
    monkeypatch.setitem(sys.modules, "varreinterp._vcfscan", old)
    monkeypatch.setattr(varreinterp, "_vcfscan", old)
    try:
        assert not importlib.reload(vcfscan).available()
    finally:
        monkeypatch.undo()
        assert importlib.reload(vcfscan).available()


def test_a_latin1_byte_in_a_header_line_is_refused_on_its_line(tmp_path: Path) -> None:
    """With the format detected (the default), as with --format clinvar-vcf."""
    path = tmp_path / "clinvar_20240303.vcf"
    text = write_clinvar(path, [("1", 100, "A", "G", "Benign", 2, None, None)]).read_bytes()
    path.write_bytes(text.replace(b"##source=ClinVar", b"##source=Clin\xe9Var"))
    for extra in ([], ["--format", "clinvar-vcf"]):
        res = invoke(tmp_path / "s", "snapshot", "add", path, *extra)
        assert res.code == 3
        assert f"{path}:3: not a text file (invalid UTF-8)" in res.err, res.err
