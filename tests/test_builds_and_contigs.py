"""Which genome build and which contig a file's rows are on, on both sides of a match: files of
another build are refused, RefSeq accessions are read by their build, hg19's chrM is kept out
of snapshots as it is kept out of patients, and numbers are never read as classification
terms outside the pre-2017 files that use them. Each case here was once a silent wrong
answer (exit 0, a false hit or a missed one)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from builders import LAB_MAPPING
from conftest import invoke

from varreinterp import vcfscan
from varreinterp.assembly import (
    Assembly,
    accession_build,
    assembly_from_contig_lengths,
    contig_sql,
    normalize_contig,
    other_build,
)

_RELEASE = 'release_date = "2024-01-01"'
HEADER38 = ("##fileformat=VCFv4.2\n##reference=GRCh38\n"
            '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n')


def _release(path: Path, rows: list[str], extra_header: str = "",
             date: str = "20240107", declare_revstat: bool = True) -> Path:
    """A ClinVar-format release of `rows` (CHROM POS REF ALT CLNSIG CLNREVSTAT, tab-free)."""
    info = ['##INFO=<ID=CLNSIG,Number=.,Type=String,Description="sig">',
            '##INFO=<ID=GENEINFO,Number=1,Type=String,Description="gene">']
    if declare_revstat:
        info.append('##INFO=<ID=CLNREVSTAT,Number=.,Type=String,Description="rev">')
    lines = [f"##fileformat=VCFv4.1\n##fileDate={date}\n##reference=GRCh38\n{extra_header}"
             + "\n".join(info) + "\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    for n, row in enumerate(rows, start=1):
        chrom, pos, ref, alt, sig, rev = row.split()
        lines.append(f"{chrom}\t{pos}\t{n}\t{ref}\t{alt}\t.\t.\t"
                     f"CLNSIG={sig};CLNREVSTAT={rev};GENEINFO=G{n}:{n}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _patient(path: Path, records: list[tuple[str, int, str, str]], header: str = HEADER38,
             ) -> Path:
    body = "".join(f"{c}\t{p}\t.\t{r}\t{a}\t50\tPASS\t.\tGT\t1/1\n" for c, p, r, a in records)
    path.write_text(header + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tP1\n"
                    + body)
    return path


def _tsv_rows(out: str) -> list[list[str]]:
    lines = [ln for ln in out.splitlines() if ln and not ln.startswith("#")]
    return [ln.split("\t") for ln in lines[1:]]


def _stored(store: Path) -> list[tuple[object, ...]]:
    (folder,) = (store / "snapshots").iterdir()
    with duckdb.connect() as con:
        return con.execute(
            f"SELECT chrom, pos, classification, stars, gene FROM "
            f"read_parquet('{folder / 'variants.parquet'}') ORDER BY chrom, pos").fetchall()


# ------------------------------------------------------------------------------ other builds
@pytest.mark.parametrize(("reference", "lengths", "names"), [
    ("file:///ref/NCBI36_hg18.fa", {"1": 247249719}, "NCBI36"),
    ("hg18", {}, "hg18"),
    ("T2T-CHM13v2.0.fa", {}, "T2T"),
    ("hs1", {}, "hs1"),
    (None, {"chr1": 248387328}, "248,387,328"),  # CHM13's chr1, no name given
    (None, {"1": 247249719, "22": 49691432}, "247,249,719"),  # hg18's, no name given
    ("/refs/chm13v2.0.fa", {}, "chm13v2"),
    ("C:\\refs\\hg18.fa", {}, "hg18"),
])
def test_another_build_is_named(reference: str | None, lengths: dict[str, int],
                                names: str) -> None:
    why = other_build(reference, lengths)
    assert why is not None and names in why


@pytest.mark.parametrize(("reference", "lengths"), [
    ("GRCh38", {"chr1": 248956422}),
    ("human_g1k_v37.fasta", {"1": 249250621}),
    ("/data/hs37d5.fa", {}),
    ("GRCh38_full_analysis_set_plus_decoy_hla.fa", {}),
    # An extract that declares its cut chr1 (the real Platinum gVCF in ../shared) and a toy
    # test reference: the names or nothing decide, never the short length.
    ("file:///genomes/UCSC/hg19/genome.fa", {"chr1": 54321, "chrM": 16571}),
    (None, {"chr7": 67}),
    (None, {"chrUn_gl000220": 161802, "GL000207.1": 4262}),
    # Folders are named anything; GRCh37/38 named or measured anywhere decides first.
    ("file:///mnt/T2T-lab/refs/GRCh38_no_alt_analysis_set.fasta", {}),
    ("/Volumes/T2T/hg38.fa", {}),
    ("hg38_T2T-Y.fa", {}),
    ("/mnt/hs1/genomes/hg19.fa", {}),
    ("/data/projects/HG18-cohort/GRCh37/hs37d5.fa", {}),
    ("/refs/T2T/ref.fa", {"chr1": 248956422}),
])
def test_the_two_builds_and_cut_contigs_are_not_another_build(
        reference: str | None, lengths: dict[str, int]) -> None:
    assert other_build(reference, lengths) is None


def test_every_primary_chromosome_length_tells_the_build() -> None:
    assert assembly_from_contig_lengths({"chr17": 83257441}) is Assembly.GRCh38
    assert assembly_from_contig_lengths({"17": 81195210}) is Assembly.GRCh37
    assert assembly_from_contig_lengths({"NC_000017.11": 1}) is Assembly.GRCh38


def test_a_patient_vcf_of_another_build_is_refused(tmp_path: Path) -> None:
    """hg18 positions against a GRCh37 release gave false pathogenic hits with a warning
    that the header 'does not tell the build'."""
    store = tmp_path / "store"
    release = _release(tmp_path / "clinvar_20240107.vcf",
                       ["1 1000 A G Pathogenic criteria_provided,_single_submitter"])
    assert invoke(store, "snapshot", "add", release).code == 0
    for header in ("##fileformat=VCFv4.2\n##reference=file:///ref/NCBI36_hg18.fa\n",
                   "##fileformat=VCFv4.2\n##contig=<ID=chr1,length=248387328>\n"):
        vcf = _patient(tmp_path / "p.vcf", [("1", 1000, "A", "G")],
                       header + '##FORMAT=<ID=GT,Number=1,Type=String,Description="GT">\n')
        out = tmp_path / "out.tsv"
        res = invoke(store, "annotate", vcf, "-f", "tsv", "-o", out)
        assert res.code == 3, res.err
        assert "another genome build" in res.err and "p.vcf" in res.err
        assert not out.exists()


# ------------------------------------------------------------------------- RefSeq accessions
@pytest.mark.parametrize(("name", "key", "build"), [
    ("NC_000001.10", "1", Assembly.GRCh37), ("NC_000001.11", "1", Assembly.GRCh38),
    ("nc_000023.11", "X", Assembly.GRCh38), ("NC_000024.9", "Y", Assembly.GRCh37),
    ("NC_000007.13", "7", Assembly.GRCh37), ("NC_012920.1", "MT", None),
    ("NC_001807.4", "NC_001807.4", None),  # hg19's chrM: not the rCRS, never MT
    ("NC_000001.9", "NC_000001.9", None),  # hg18's chr1: no build of ours
    ("chrM", "MT", None), ("chr1", "1", None), ("MT", "MT", None),
])
def test_accessions_and_the_sql_rule_agree(name: str, key: str, build: Assembly | None) -> None:
    assert normalize_contig(name) == key
    assert accession_build(name) is build
    got = duckdb.sql(f"SELECT {contig_sql('c')} FROM (SELECT '{name}' AS c)").fetchall()
    assert got == [(key,)]


def test_patient_accessions_match_only_on_their_own_build(tmp_path: Path) -> None:
    store = tmp_path / "store"
    release = _release(tmp_path / "clinvar_20240107.vcf", [
        "X 624386 C G Likely_benign criteria_provided,_single_submitter",
        "MT 578 T C Likely_pathogenic criteria_provided,_single_submitter"])
    assert invoke(store, "snapshot", "add", release).code == 0
    vcf = _patient(tmp_path / "p.vcf", [("NC_000023.11", 624386, "C", "G"),
                                        ("NC_012920.1", 578, "T", "C"),
                                        ("NC_000023.10", 624386, "C", "G")])
    res = invoke(store, "annotate", vcf, "-f", "tsv")
    assert res.code == 0, res.err
    rows = _tsv_rows(res.out)
    assert sorted((r[1], r[8]) for r in rows) == [("NC_000023.11", "Likely_benign"),
                                                  ("NC_012920.1", "Likely_pathogenic")]
    # GRCh37's X in a GRCh38 file: not matched, and said so (never silently nothing).
    assert "contig NC_000023.10 is GRCh37's chromosome X" in res.err
    assert "other_build_contig 1" in res.err


# ------------------------------------------------------------- mitochondria in snapshots


def _lab_mapping(tmp_path: Path, fmt: str) -> Path:
    """The mapping of a lab table: TSV columns chrom pos ref alt class, or a VCF with INFO/CLS."""
    names = (dict(contig="chrom", pos="pos", ref="ref", alt="alt", cls="class") if fmt == "tsv"
             else dict(contig="CHROM", pos="POS", ref="REF", alt="ALT", cls="CLS"))
    mapping = tmp_path / "lab.toml"
    mapping.write_text(LAB_MAPPING.format(release=_RELEASE, fmt=fmt, **names))
    return mapping


def test_hg19_chrm_rows_of_a_lab_table_are_not_imported(tmp_path: Path) -> None:
    """hg19 chrM:12706 T>C is no variant at all on the rCRS: imported as MT, it made an rCRS
    patient's MT:12706 T>C 'Pathogenic'."""
    store = tmp_path / "store"
    table = tmp_path / "lab.tsv"
    table.write_text("chrom\tpos\tref\talt\tclass\n"
                     "chrM\t12706\tT\tC\tPathogenic\n1\t949523\tC\tT\tBenign\n")
    mapping = _lab_mapping(tmp_path, "tsv")
    res = invoke(store, "snapshot", "add", table, "--mapping", mapping, "--assembly", "GRCh37")
    assert res.code == 0, res.err
    assert "unverified_mitochondrion=1" in res.err
    assert "contig chrM has no declared length in a GRCh37 file" in res.err
    assert [r[:2] for r in _stored(store)] == [("1", 949523)]


def test_a_16571_bp_chrm_of_a_lab_vcf_is_not_imported(tmp_path: Path) -> None:
    store = tmp_path / "store"
    table = tmp_path / "lab.vcf"
    table.write_text("##fileformat=VCFv4.2\n##contig=<ID=chrM,length=16571>\n"
                     "##contig=<ID=chr1,length=249250621>\n"
                     "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                     "chrM\t12706\t.\tT\tC\t.\t.\tCLS=Pathogenic\n"
                     "chr1\t949523\t.\tC\tT\t.\t.\tCLS=Benign\n")
    mapping = _lab_mapping(tmp_path, "vcf")
    res = invoke(store, "snapshot", "add", table, "--mapping", mapping, "--assembly", "GRCh37")
    assert res.code == 0, res.err
    assert "non_rcrs_mitochondrion=1" in res.err
    assert [r[:2] for r in _stored(store)] == [("1", 949523)]


@pytest.mark.parametrize("scanner", [True, False], ids=["scanner", "sql"])
def test_clinvar_format_rows_on_hg19_chrm_or_another_builds_accession_are_skipped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scanner: bool) -> None:
    if not scanner:
        monkeypatch.setattr(vcfscan, "_vcfscan", None)
    elif not vcfscan.available():
        pytest.skip("the compiled scanner is not built here")
    store = tmp_path / "store"
    release = _release(tmp_path / "clinvar_20240107.vcf", [
        "chrM 12706 T C Pathogenic criteria_provided,_single_submitter",
        "NC_000001.10 949523 C T Pathogenic criteria_provided,_single_submitter",
        "NC_000001.11 949523 C T Benign criteria_provided,_single_submitter",
        "MT 578 T C Likely_pathogenic criteria_provided,_single_submitter"],
        extra_header="##contig=<ID=chrM,length=16571>\n")
    res = invoke(store, "snapshot", "add", release)
    assert res.code == 0, res.err
    assert "non_rcrs_mitochondrion=1" in res.err and "other_build_contig=1" in res.err
    assert [r[:3] for r in _stored(store)] == [("1", 949523, "Benign"),
                                               ("MT", 578, "Likely_pathogenic")]


# ------------------------------------------------------------------ numbers are not terms
def test_a_lab_tables_numeric_classes_are_refused_unless_mapped(tmp_path: Path) -> None:
    """'3' on the 5-class scale is uncertain; ClinVar's pre-2017 code 3 was likely benign.
    Read through the codes, a lab's VUS was reported benign."""
    store = tmp_path / "store"
    table = tmp_path / "lab.tsv"
    table.write_text("chrom\tpos\tref\talt\tclass\n1\t949523\tC\tT\t5\n1\t955563\tG\tC\t3\n")
    mapping = _lab_mapping(tmp_path, "tsv")
    text = mapping.read_text()
    res = invoke(store, "snapshot", "add", table, "--mapping", mapping, "--assembly", "GRCh37")
    assert res.code == 3
    assert "unknown classification term '" in res.err and "lab.tsv" in res.err
    assert not (store / "snapshots").exists() or not any((store / "snapshots").iterdir())
    mapping.write_text(text + '\n[terms]\n"5" = "Pathogenic"\n"3" = "Uncertain_significance"\n')
    res = invoke(store, "snapshot", "add", table, "--mapping", mapping, "--assembly", "GRCh37")
    assert res.code == 0, res.err
    assert [r[:3] for r in _stored(store)] == [("1", 949523, "Pathogenic"),
                                               ("1", 955563, "Uncertain_significance")]


def test_numeric_clnsig_in_a_current_format_release_is_refused(tmp_path: Path) -> None:
    release = _release(tmp_path / "clinvar_20240107.vcf",
                       ["1 1000 A G 3 criteria_provided,_single_submitter"])
    res = invoke(tmp_path / "store", "snapshot", "add", release)
    assert res.code == 3
    assert "unknown classification term '3'" in res.err


# -------------------------------------------------------------- undeclared INFO fields
@pytest.mark.parametrize("scanner", [True, False], ids=["scanner", "sql"])
def test_undeclared_clnrevstat_is_still_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             scanner: bool) -> None:
    """Without its ##INFO line, CLNREVSTAT was dropped: every star empty, every variant a
    'review' change in the next diff."""
    if not scanner:
        monkeypatch.setattr(vcfscan, "_vcfscan", None)
    elif not vcfscan.available():
        pytest.skip("the compiled scanner is not built here")
    release = _release(tmp_path / "clinvar_20240107.vcf", [
        "1 1000 A G Pathogenic reviewed_by_expert_panel",
        "1 2000 C T Uncertain_significance criteria_provided,_multiple_submitters,_no_conflicts"],
        declare_revstat=False)
    store = tmp_path / "store"
    res = invoke(store, "snapshot", "add", release)
    assert res.code == 0, res.err
    assert _stored(store) == [("1", 1000, "Pathogenic", 3, "G1"),
                              ("1", 2000, "Uncertain_significance", 2, "G2")]


# ---------------------------------------------------------------- REF checks in diff
def test_diff_drops_a_call_whose_ref_the_fasta_contradicts_as_annotate_does(
        tmp_path: Path) -> None:
    """annotate counted a REF the FASTA contradicts as ref_mismatch; diff reported the call's
    change all the same."""
    import pysam

    store = tmp_path / "store"
    for date, sig in (("20240107", "Pathogenic"), ("20240602", "Benign")):
        release = _release(tmp_path / f"clinvar_{date}.vcf", [
            f"chr1 5 A G {sig} criteria_provided,_single_submitter",
            f"chr1 9 T C {sig} criteria_provided,_single_submitter"], date=date)
        assert invoke(store, "snapshot", "add", release).code == 0
    fasta = tmp_path / "ref.fa"
    fasta.write_text(">chr1\nACGTCACGTACGTACGTACG\n")  # pos 5 is C, pos 9 is T
    pysam.faidx(str(fasta))
    vcf = _patient(tmp_path / "p.vcf", [("chr1", 5, "A", "G"), ("chr1", 9, "T", "C")])
    span = ("--from", "previous", "--to", "latest")
    res = invoke(store, "diff", vcf, *span, "--reference", fasta, "-f", "tsv")
    assert res.code == 0, res.err
    assert [(r[1], r[2]) for r in _tsv_rows(res.out)] == [("chr1", "9")]
    assert "not reported: ref_mismatch 1" in res.err
    without = invoke(store, "diff", vcf, *span, "-f", "tsv")
    assert sorted((r[1], r[2]) for r in _tsv_rows(without.out)) == [("chr1", "5"), ("chr1", "9")]


def test_pre_2017_numeric_release_skips_alleles_that_are_not_bases(tmp_path: Path) -> None:
    release = tmp_path / "clinvar_20170404.vcf"
    release.write_text(
        "##fileformat=VCFv4.0\n##fileDate=20170404\n##reference=GRCh37.p13\n"
        '##INFO=<ID=CLNSIG,Number=.,Type=String,Description="sig">\n'
        '##INFO=<ID=CLNALLE,Number=.,Type=Integer,Description="allele">\n'
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        "1\t100\t1\tA\tG,-\t.\t.\tCLNSIG=5,3;CLNALLE=1,2\n"
        "NC_000001.11\t200\t2\tC\tT\t.\t.\tCLNSIG=5;CLNALLE=1\n")
    store = tmp_path / "store"
    res = invoke(store, "snapshot", "add", release)
    assert res.code == 0, res.err
    assert "invalid_allele=1" in res.err and "other_build_contig=1" in res.err
    assert [r[:3] for r in _stored(store)] == [("1", 100, "Pathogenic")]


@pytest.mark.parametrize("header", [
    "##fileformat=VCFv4.2\n##contig=<ID=NC_000001.11>\n",  # declared, no length
    "##fileformat=VCFv4.2\n",  # nothing: the snapshot's build is assumed, with a warning
])
def test_accessions_of_a_file_that_states_no_build(tmp_path: Path, header: str) -> None:
    store = tmp_path / "store"
    release = _release(tmp_path / "clinvar_20240107.vcf",
                       ["1 1000 A G Pathogenic criteria_provided,_single_submitter",
                        "1 2000 C T Benign criteria_provided,_single_submitter"])
    assert invoke(store, "snapshot", "add", release).code == 0
    vcf = _patient(tmp_path / "p.vcf", [("NC_000001.11", 1000, "A", "G"),
                                        ("NC_000001.10", 2000, "C", "T")],
                   header + '##FORMAT=<ID=GT,Number=1,Type=String,Description="GT">\n')
    res = invoke(store, "annotate", vcf, "-f", "tsv")
    assert res.code == 0, res.err
    assert [(r[1], r[2], r[8]) for r in _tsv_rows(res.out)] == [
        ("NC_000001.11", "1000", "Pathogenic")]
    assert "other_build_contig 1" in res.err


def test_a_release_whose_hg19_chrm_rows_are_refused_is_not_suspect(tmp_path: Path) -> None:
    """A lab table stored with MT rows, then one spelling it chrM in GRCh37 (or one stored
    before the rule): losing rows the contig rule refused is not a cut release."""
    store = tmp_path / "store"
    mapping = _lab_mapping(tmp_path, "tsv")
    body = "".join(f"1\t{949000 + i}\tC\tT\tBenign\n" for i in range(30))
    for date, mt in (("2024-01-01", "MT"), ("2024-02-01", "chrM")):
        table = tmp_path / f"lab-{date}.tsv"
        table.write_text(f"chrom\tpos\tref\talt\tclass\n{mt}\t12706\tT\tC\tPathogenic\n{body}")
        mapping.write_text(mapping.read_text().replace(
            mapping.read_text().split("\n")[3], f'release_date = "{date}"'))
        res = invoke(store, "snapshot", "add", table, "--mapping", mapping,
                     "--assembly", "GRCh37")
        assert res.code == 0, res.err
    assert "unverified_mitochondrion=1" in res.err
    assert "write it MT" in res.err
    listed = invoke(store, "snapshot", "list", "-f", "tsv")
    assert "SUSPECT" not in listed.out, listed.out


def test_a_bed_naming_accessions_is_refused_with_its_line(tmp_path: Path) -> None:
    """A panel applies to either build: an accession would put GRCh37 regions on GRCh38."""
    from varreinterp.errors import InputError
    from varreinterp.panels import load_bed

    bed = tmp_path / "panel.bed"
    bed.write_text("chr17\t100\t200\nNC_000017.10\t43044294\t43125482\n")
    with pytest.raises(InputError) as info:
        load_bed(bed)
    assert info.value.line == 2 and "RefSeq accession of GRCh37" in str(info.value)


def test_a_filedate_with_a_time_is_its_date(tmp_path: Path) -> None:
    release = _release(tmp_path / "clinvar_20240107.vcf",
                       ["1 1000 A G Pathogenic criteria_provided,_single_submitter"],
                       date="2024-01-07T12:00:00")
    res = invoke(tmp_path / "store", "snapshot", "add", release)
    assert res.code == 0, res.err
    assert "release 2024-01-07" in res.err
