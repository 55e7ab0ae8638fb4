"""`varreinterp annotate`: real public patient VCFs (../shared/data, skipped when absent), hand-made
edge cases written to tmp_path, and the bundled sample_vcfs checked against their README.

Expected hits are computed independently wherever practical: the patient VCF and the ClinVar file
are read with plain Python (gzip/csv), a sample carries an allele when its GT holds that allele's
index (no '.' in the call), alleles are trimmed with a few lines of our own, and the two key sets
are intersected. The product must agree with that, not with itself."""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from builders import (
    clinvar_keys,
    hit_keys,
    json_rows,
    stats,
    write_clinvar,
    write_patient,
)
from conftest import MAPPINGS, SAMPLES, invoke, shared
from conftest import CliResult as Result
from oracle import bare, carried_calls

from varreinterp.snapshots import add_snapshot
from varreinterp.store import Store

C37 = "clinvar/GRCh37"
P37 = "patients/GRCh37"
P38 = "patients/GRCh38"
MACARTHUR_2018 = "clinvar/custom_format/macarthur_clinvar_alleles.b38.release201803.vcf"
KGENOMES = f"{P37}/1kg_exome.16_samples.vcf"
CLINVAR_2023 = f"{C37}/clinvar_20230710.chr1_69k-981k.vcf.gz"
GIAB_CHR20 = f"{P37}/NA12878.giab.chr20_10.0-10.1Mb.vcf.gz"
HG19_CHR20 = "reference/hg19.chr20.real_at_9.995-11.095Mb.fa.gz"
GVCF = f"{P37}/NA12878.platinum.gvcf.chrM_chr1start.vcf.gz"
BCF = f"{P38}/NA12878.platinum.chr21.bcf"

ANNOTATION_COLUMNS = ["sample", "chrom", "pos", "ref", "alt", "zygosity", "filter", "gene",
                      "classification", "tier", "stars", "review_status", "conditions",
                      "variation_id", "snapshot"]

# The tiny GRCh38 ClinVar-format snapshot used by the hand-made cases.
TINY = [
    ("1", 1000, "A", "G", "Pathogenic", 2, "GA", "Foo,_type_1|Bar_syndrome"),
    ("1", 2000, "C", "T", "Uncertain_significance", 1, "GB", None),
    ("1", 3001, "CA", "C", "Likely_benign", 1, "GC", None),
    ("MT", 500, "A", "G", "Pathogenic", 3, "MT-X", None),
    ("1", 4000, "G", "A", "Benign", 1, None, None),
    ("1", 5000, "T", "C", "Pathogenic", 1, None, None),
    ("1", 6000, "G", "T", "Likely_pathogenic", 1, None, None),
    ("1", 8000, "G", "C", "Benign", 2, None, None),
]
TINY_NAME = "tiny-2024-03-01"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    """(store, source file) holding the tiny snapshot TINY_NAME."""
    d = tmp_path_factory.mktemp("tiny")
    src = write_clinvar(d / "clinvar_tiny.vcf", TINY)
    store = d / "store"
    add_snapshot(Store(store), src, name=TINY_NAME)
    return store, src


class RealStore:
    """One store per module for the real files; each snapshot is imported on first use."""

    def __init__(self, root: Path):
        self.root = root
        self._names: dict[str, str] = {}

    def clinvar(self, relative: str) -> str:
        if relative not in self._names:
            self._names[relative] = add_snapshot(Store(self.root), shared(relative)).snapshot.name
        return self._names[relative]

    def macarthur_2018(self) -> str:
        if MACARTHUR_2018 not in self._names:
            r = invoke(self.root, "snapshot", "add", shared(MACARTHUR_2018), "--format",
                       "table", "--mapping", MAPPINGS / "macarthur-vcf.toml", "--assembly",
                       "GRCh38")
            assert r.code == 0, r.err
            self._names[MACARTHUR_2018] = "macarthur-GRCh38-2018-03-01"
            assert Store(self.root).exists(self._names[MACARTHUR_2018])
        return self._names[MACARTHUR_2018]


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> RealStore:
    return RealStore(tmp_path_factory.mktemp("real") / "store")


# ------------------------------------------------------------------------------ real files
def test_1kg_exome_hits_equal_an_independent_intersection(real: RealStore):
    vcf, clinvar = shared(KGENOMES), shared(CLINVAR_2023)
    snap = real.clinvar(CLINVAR_2023)
    r = invoke(real.root, "annotate", vcf, "--snapshot", snap, "--format", "json")
    assert r.code == 0, r.err
    rows = json_rows(r.out)

    n_records, calls = carried_calls(vcf)
    keys = clinvar_keys(clinvar)
    expected = {(s, c, p, ref, alt) for s, c, p, ref, alt, b in calls if (b, p, ref, alt) in keys}
    assert expected == {("HG00731", "1", 878314, "G", "C"), ("HG00733", "1", 878314, "G", "C"),
                        ("NA19679", "1", 878314, "G", "C"), ("NA20876", "1", 874734, "C", "T")}
    assert hit_keys(rows) == expected
    assert len(rows) == len(expected)
    assert {r["zygosity"] for r in rows} == {"het"}
    assert {r["snapshot"] for r in rows} == {snap}
    assert all(set(ANNOTATION_COLUMNS) <= set(row) for row in rows)

    st = stats(r.err)
    assert st["records"] == n_records == 32
    assert st["alleles"] == 32
    assert st["carried"] == len(calls)
    assert st["matched"] == 4


@pytest.mark.parametrize("patient, n_min, n_max", [("HG004", 16, 17), ("HG006", 11, 12)])
def test_giab_grch38_hits_against_the_macarthur_table(real: RealStore, patient, n_min, n_max):
    vcf = shared(f"{P38}/{patient}.giab.chr1_0.6-1.3Mb.vcf.gz")
    macarthur = shared(MACARTHUR_2018)
    snap = real.macarthur_2018()
    r = invoke(real.root, "annotate", vcf, "--snapshot", snap, "--format", "json")
    assert r.code == 0, r.err
    rows = json_rows(r.out)
    assert rows, "the GIAB file shares variants with the MacArthur release (README)"
    assert n_min <= len(rows) <= n_max

    keys = clinvar_keys(macarthur, info_key="CLINICAL_SIGNIFICANCE")
    for row in rows:
        assert (bare(row["chrom"]), row["pos"], row["ref"], row["alt"]) in keys
        assert row["chrom"] == "chr1"  # the patient's spelling
    _, calls = carried_calls(vcf)
    expected = {(s, c, p, ref, alt) for s, c, p, ref, alt, b in calls if (b, p, ref, alt) in keys}
    assert hit_keys(rows) == expected
    assert {row["sample"] for row in rows} == {patient}


def test_bcf_input_is_read(real: RealStore, tmp_path):
    pysam = pytest.importorskip("pysam")
    bcf = shared(BCF)
    # The first record the sample carries, read by htslib directly, becomes a snapshot entry.
    with pysam.VariantFile(str(bcf)) as fh:
        sample = list(fh.header.samples)[0]
        n_records = 0
        first = None
        for rec in fh:
            n_records += 1
            gt = rec.samples[sample]["GT"]
            if (first is None and rec.alts and len(rec.alts) == 1 and len(rec.ref) == 1
                    and len(rec.alts[0]) == 1 and None not in gt and 1 in gt):
                first = (rec.chrom, rec.pos, rec.ref, rec.alts[0], "hom" if gt == (1, 1)
                         else "het")
    assert n_records == 58447
    assert first is not None
    chrom, pos, ref, alt, zyg = first
    store = tmp_path / "store"
    src = write_clinvar(tmp_path / "one.vcf", [(bare(chrom), pos, ref, alt, "Benign", 2, "G21",
                                                None)])
    add_snapshot(Store(store), src, name="one")
    r = invoke(store, "annotate", bcf, "--snapshot", "one", "--format", "json")
    assert r.code == 0, r.err
    rows = json_rows(r.out)
    assert hit_keys(rows) == {(sample, chrom, pos, ref, alt)}
    assert rows[0]["zygosity"] == zyg
    st = stats(r.err)
    assert st["records"] == 58447
    assert "58447 records" in r.err


def test_gvcf_reference_blocks_are_counted_not_reported(tmp_path):
    gvcf = shared(GVCF)
    # Reference calls: END= blocks, and single-site ALT=. calls (1-bp blocks in this format).
    blocks, end_blocks, block_key, variant = 0, 0, None, None
    with gzip.open(gvcf, "rt") as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            f = line.rstrip("\n").split("\t")
            gt = re.split(r"[/|]", f[9].split(":")[0])
            if f[4] in (".", "<NON_REF>", "<*>"):
                blocks += 1
                if re.search(r"(^|;)END=", f[7]):
                    end_blocks += 1
                    if block_key is None and f[0] == "chr1":
                        block_key = (f[0], int(f[1]), f[3])
            elif variant is None and f[0] == "chr1" and re.fullmatch(r"[ACGT]", f[4]) \
                    and "." not in gt and "1" in gt:
                variant = (f[0], int(f[1]), f[3], f[4])
    assert blocks > 0 and block_key and variant
    other = next(b for b in "ACGT" if b != block_key[2])
    store = tmp_path / "store"
    src = write_clinvar(tmp_path / "g37.vcf", [
        ("1", block_key[1], block_key[2], other, "Pathogenic", 1, None, None),
        ("1", variant[1], variant[2], variant[3], "Uncertain_significance", 1, None, None),
    ], assembly="GRCh37")
    add_snapshot(Store(store), src, name="g37")
    r = invoke(store, "annotate", gvcf, "--snapshot", "g37", "--format", "json")
    assert r.code == 0, r.err
    rows = json_rows(r.out)
    assert hit_keys(rows) == {("NA12878", *variant)}
    st = stats(r.err)
    assert end_blocks == 605
    assert st["skipped"]["reference_block"] == blocks == 789
    assert st["records"] == 903


def test_left_alignment_with_reference_matches_only_with_the_fasta(tmp_path):
    vcf, fasta = shared(GIAB_CHR20), shared(HG19_CHR20)
    # `bcftools norm -m -any -f` moves two alleles of this file (checked by hand and in
    # test_reader_matches_bcftools_norm_on_giab_chr20 below):
    #   chr20:10097453 CTTTC>C      -> chr20:10097437 TTTTC>T
    #   chr20:10004223 A>AA (1st ALT of A>AA,AG, GT 1|2) -> chr20:10004222 C>CA
    store = tmp_path / "store"
    src = write_clinvar(tmp_path / "c37.vcf", [
        ("20", 10004222, "C", "CA", "Uncertain_significance", 1, "X1", None),
        ("20", 10097437, "TTTTC", "T", "Pathogenic", 1, "X2", None),
    ], assembly="GRCh37")
    add_snapshot(Store(store), src, name="left")
    plain = invoke(store, "annotate", vcf, "--snapshot", "left", "--format", "json")
    assert plain.code == 0, plain.err
    assert json_rows(plain.out) == []
    aligned = invoke(store, "annotate", vcf, "--snapshot", "left", "--format", "json",
                     "--reference", fasta)
    assert aligned.code == 0, aligned.err
    rows = json_rows(aligned.out)
    assert hit_keys(rows) == {("INTEGRATION", "chr20", 10004222, "C", "CA"),
                              ("INTEGRATION", "chr20", 10097437, "TTTTC", "T")}
    assert {r["zygosity"] for r in rows} == {"het"}
    assert stats(aligned.err)["records"] == 221
    assert stats(aligned.err)["alleles"] == 222


@pytest.mark.skipif(shutil.which("bcftools") is None, reason="bcftools is not installed")
def test_reader_matches_bcftools_norm_on_giab_chr20(tmp_path):
    from varreinterp.db import connect as duckdb_connect
    from varreinterp.patient_vcf import FastaReference, load, read_header

    vcf, fasta = shared(GIAB_CHR20), shared(HG19_CHR20)
    norm = subprocess.run(["bcftools", "norm", "-m", "-any", "-f", str(fasta), str(vcf)],
                          capture_output=True, text=True, check=True).stdout
    theirs = set()
    for line in norm.splitlines():
        if not line.startswith("#"):
            f = line.split("\t")
            theirs.add((f[0], int(f[1]), f[3].upper(), f[4].upper()))
    raw = set()
    with gzip.open(vcf, "rt") as fh:
        for line in fh:
            if not line.startswith("#"):
                f = line.split("\t")
                for alt in f[4].split(","):
                    raw.add((f[0], int(f[1]), f[3].upper(), alt.upper()))
    # bcftools really does move alleles in this file; the snapshot test above relies on these.
    assert {("chr20", 10097437, "TTTTC", "T"), ("chr20", 10004222, "C", "CA")} <= theirs - raw

    header = read_header(vcf, tmp_path)
    con = duckdb_connect()
    try:
        calls = load(con, header, [0], FastaReference(fasta, tmp_path))
        ours = set(con.execute(
            f"SELECT chrom, pos, ref, alt FROM {calls.allele} WHERE skip IS NULL")
                   .fetchall())
        n_alleles = con.execute(f"SELECT count(*) FROM {calls.allele}").fetchone()[0]
    finally:
        con.close()
    assert ours == theirs
    assert n_alleles == len(theirs) == 222


def test_grch37_vcf_against_grch38_snapshot_is_refused(real: RealStore, tmp_path):
    vcf = shared(KGENOMES)
    snap = real.macarthur_2018()
    out = tmp_path / "out.json"
    r = invoke(real.root, "annotate", vcf, "--snapshot", snap, "--format", "json", "-o", out)
    assert r.code == 3
    assert "GRCh37" in r.err and "GRCh38" in r.err
    assert str(vcf) in r.err
    assert r.out == ""
    assert not out.exists()


# ------------------------------------------------------------------------------ hand-made
def annotate(tiny_store: Path, vcf: Path, *extra: str) -> Result:
    return invoke(tiny_store, "annotate", vcf, "--snapshot", TINY_NAME, "--format", "json",
                  *extra)


def test_second_alt_of_multiallelic_record(tiny, tmp_path):
    store, _ = tiny
    vcf = write_patient(tmp_path / "p.vcf", ["P1", "P2"], [
        "chr1 1000 . A C,G 50 PASS . GT 0/2 0/1",
    ])
    r = annotate(store, vcf)
    assert r.code == 0, r.err
    rows = json_rows(r.out)
    assert hit_keys(rows) == {("P1", "chr1", 1000, "A", "G")}
    (row,) = rows
    assert row["zygosity"] == "het"
    assert row["classification"] == "Pathogenic" and row["tier"] == "pathogenic"
    assert row["stars"] == 2 and row["gene"] == "GA" and row["variation_id"] == "101"
    st = stats(r.err)
    assert (st["records"], st["alleles"], st["carried"], st["matched"]) == (1, 2, 2, 1)
    assert st["skipped"] == {"other_allele_called": 2}


@pytest.mark.parametrize("chrom", ["chr1", "1", "CHR1"])
def test_contig_spelling_is_matched_and_kept(tiny, tmp_path, chrom):
    store, _ = tiny
    contigs = {chrom: 248956422}
    vcf = write_patient(tmp_path / "p.vcf", ["P1"], [f"{chrom} 4000 . G A 50 PASS . GT 1/1"],
                        contigs=contigs)
    r = annotate(store, vcf)
    assert r.code == 0, r.err
    rows = json_rows(r.out)
    assert hit_keys(rows) == {("P1", chrom, 4000, "G", "A")}
    assert rows[0]["zygosity"] == "hom"


@pytest.mark.parametrize("chrom", ["chrM", "MT", "chrMT", "M"])
def test_mitochondrion_haploid_call_is_hemizygous(tiny, tmp_path, chrom):
    store, _ = tiny
    vcf = write_patient(tmp_path / "p.vcf", ["P1", "P2"], [f"{chrom} 500 . A G 50 PASS . GT 1 0"],
                        contigs={"chr1": 248956422, chrom: 16569})
    r = annotate(store, vcf)
    assert r.code == 0, r.err
    rows = json_rows(r.out)
    assert hit_keys(rows) == {("P1", chrom, 500, "A", "G")}
    assert rows[0]["zygosity"] == "hemi"
    assert rows[0]["stars"] == 3
    assert stats(r.err)["skipped"] == {"hom_ref": 1}


def test_star_allele_half_call_and_hom_ref_are_counted_not_reported(tiny, tmp_path):
    store, _ = tiny
    vcf = write_patient(tmp_path / "p.vcf", ["P1", "P2"], [
        "chr1 2000 . C T,* 50 PASS . GT 1/2 2/2",   # star allele: P1 still carries T
        "chr1 6000 . G T 50 PASS . GT ./1 1/.",      # half-calls
        "chr1 4000 . G A 50 PASS . GT 0/0 0|0",      # hom-ref at a ClinVar site
        "chr1 8000 . G C 50 PASS . GT ./. .",        # no-calls
    ])
    r = annotate(store, vcf)
    assert r.code == 0, r.err
    rows = json_rows(r.out)
    assert hit_keys(rows) == {("P1", "chr1", 2000, "C", "T")}
    assert rows[0]["zygosity"] == "het"
    st = stats(r.err)
    assert st["records"] == 4
    assert st["alleles"] == 5
    assert st["skipped"] == {"star_allele": 1, "half_call": 2, "hom_ref": 2, "no_call": 2,
                             "other_allele_called": 1}
    assert st["carried"] == 1 and st["matched"] == 1


@pytest.mark.parametrize("gt, zygosity", [
    ("0/1", "het"), ("1|0", "het"), ("1/1", "hom"), ("1|1", "hom"), ("1", "hemi"),
    ("1/2", "het"), ("0/1/1", "unknown"), ("1:35", "het"),
])
def test_zygosity(tiny, tmp_path, gt, zygosity):
    store, _ = tiny
    call = "0/1:35" if gt == "1:35" else gt
    fmt = "GT:DP" if gt == "1:35" else "GT"
    vcf = write_patient(tmp_path / "p.vcf", ["P1"], [f"chr1 8000 . G C,T 50 PASS . {fmt} {call}"])
    r = annotate(store, vcf)
    assert r.code == 0, r.err
    rows = json_rows(r.out)
    assert hit_keys(rows) == {("P1", "chr1", 8000, "G", "C")}
    assert rows[0]["zygosity"] == zygosity


def test_indel_with_extra_shared_leading_base_matches_without_reference(tiny, tmp_path):
    store, _ = tiny
    vcf = write_patient(tmp_path / "p.vcf", ["P1"], ["chr1 3000 . GCA GC 50 PASS . GT 0/1"])
    r = annotate(store, vcf)
    assert r.code == 0, r.err
    rows = json_rows(r.out)
    # Reported in the normalized (ClinVar) form, on the patient's contig.
    assert hit_keys(rows) == {("P1", "chr1", 3001, "CA", "C")}
    assert rows[0]["classification"] == "Likely_benign"


def test_pass_only_drops_lowqual(tiny, tmp_path):
    store, _ = tiny
    vcf = write_patient(tmp_path / "p.vcf", ["P1"], [
        "chr1 1000 . A G 50 PASS . GT 0/1",
        "chr1 5000 . T C 3 LowQual . GT 0/1",
        "chr1 4000 . G A 50 . . GT 0/1",
    ])
    every = annotate(store, vcf)
    assert every.code == 0, every.err
    rows = json_rows(every.out)
    assert hit_keys(rows) == {("P1", "chr1", 1000, "A", "G"), ("P1", "chr1", 5000, "T", "C"),
                              ("P1", "chr1", 4000, "G", "A")}
    assert {r["pos"]: r["filter"] for r in rows} == {1000: "PASS", 5000: "LowQual", 4000: "."}
    passing = annotate(store, vcf, "--pass-only")
    assert passing.code == 0, passing.err
    assert hit_keys(json_rows(passing.out)) == {("P1", "chr1", 1000, "A", "G"),
                                                ("P1", "chr1", 4000, "G", "A")}
    assert stats(passing.err)["skipped"] == {"filtered_not_pass": 1}


@pytest.fixture
def carrier_of_everything(tmp_path) -> Path:
    """P1 carries every TINY variant (in its simplest form)."""
    records = [f"{'chrM' if c == 'MT' else 'chr' + c} {p} . {r} {a} 50 PASS . GT "
               f"{'1' if c == 'MT' else '0/1'}" for c, p, r, a, *_ in TINY]
    return write_patient(tmp_path / "all.vcf", ["P1"], records)


def test_tier_and_min_stars_filters(tiny, carrier_of_everything):
    store, _ = tiny
    vcf = carrier_of_everything

    def positions(*extra: str) -> set[int]:
        r = annotate(store, vcf, *extra)
        assert r.code == 0, r.err
        return {row["pos"] for row in json_rows(r.out)}

    assert positions() == {p for _, p, *_ in TINY}
    assert positions("--tier", "pathogenic") == {1000, 500, 5000, 6000}
    assert positions("--tier", "pathogenic", "--tier", "uncertain") == {1000, 500, 5000, 6000,
                                                                       2000}
    assert positions("--min-stars", "2") == {1000, 500, 8000}
    assert positions("--min-stars", "3") == {500}
    assert positions("--tier", "pathogenic", "--min-stars", "2") == {1000, 500}
    assert positions("--tier", "benign", "--min-stars", "2") == {8000}
    bad = annotate(store, vcf, "--tier", "nonsense")
    assert bad.code == 2


def test_sample_selection_in_a_trio(tiny, tmp_path):
    store, _ = tiny
    vcf = write_patient(tmp_path / "trio.vcf", ["CHILD", "MOTHER", "FATHER"], [
        "chr1 1000 . A G 50 PASS . GT 0/1 0/1 0/0",
        "chr1 2000 . C T 50 PASS . GT 0/1 0/0 1/1",
    ])
    everyone = annotate(store, vcf)
    assert hit_keys(json_rows(everyone.out)) == {
        ("CHILD", "chr1", 1000, "A", "G"), ("MOTHER", "chr1", 1000, "A", "G"),
        ("CHILD", "chr1", 2000, "C", "T"), ("FATHER", "chr1", 2000, "C", "T")}
    mother = annotate(store, vcf, "--sample", "MOTHER")
    assert mother.code == 0, mother.err
    assert hit_keys(json_rows(mother.out)) == {("MOTHER", "chr1", 1000, "A", "G")}
    two = annotate(store, vcf, "--sample", "FATHER", "--sample", "MOTHER")
    assert {r["sample"] for r in json_rows(two.out)} == {"FATHER", "MOTHER"}
    unknown = annotate(store, vcf, "--sample", "UNCLE")
    assert unknown.code == 2
    assert "UNCLE" in unknown.err
    assert unknown.out == ""


def test_sample_present_in_only_one_of_two_files(tiny, tmp_path):
    """The other file contributes its counts and no rows (it once failed with an SQL error)."""
    store, _ = tiny
    trio = write_patient(tmp_path / "trio.vcf", ["CHILD", "MOTHER"], [
        "chr1 1000 . A G 50 PASS . GT 0/1 0/0"])
    other = write_patient(tmp_path / "other.vcf", ["UNRELATED"], [
        "chr1 1000 . A G 50 PASS . GT 1/1"])
    r = annotate(store, trio, other, "--sample", "CHILD")
    assert r.code == 0, r.err
    assert hit_keys(json_rows(r.out)) == {("CHILD", "chr1", 1000, "A", "G")}


def test_json_and_tsv_columns_and_provenance(tiny, carrier_of_everything):
    store, src = tiny
    js = annotate(store, carrier_of_everything)
    assert js.code == 0, js.err
    rows = json_rows(js.out)
    assert len(rows) == len(TINY)
    for row in rows:
        assert set(ANNOTATION_COLUMNS) <= set(row)
        assert row["snapshot"] == TINY_NAME
    by_pos = {r["pos"]: r for r in rows}
    assert by_pos[1000]["conditions"] == "Foo,_type_1|Bar_syndrome"
    assert by_pos[1000]["review_status"] == "criteria_provided,_multiple_submitters,_no_conflicts"

    tsv = invoke(store, "annotate", carrier_of_everything, "--snapshot", TINY_NAME,
                 "--format", "tsv")
    assert tsv.code == 0, tsv.err
    lines = tsv.out.splitlines()
    assert lines[0].startswith("#")
    assert TINY_NAME in lines[0] and "2024-03-01" in lines[0]
    assert hashlib.sha256(src.read_bytes()).hexdigest() in lines[0]
    assert lines[1].split("\t")[:len(ANNOTATION_COLUMNS)] == ANNOTATION_COLUMNS
    body = [dict(zip(lines[1].split("\t"), ln.split("\t"), strict=True)) for ln in lines[2:]]
    assert {(b["sample"], b["chrom"], int(b["pos"]), b["ref"], b["alt"]) for b in body} == \
        hit_keys(rows)


def test_vcf_output_parses_and_carries_number_a_fields(tiny, tmp_path):
    pysam = pytest.importorskip("pysam")
    cyvcf2 = pytest.importorskip("cyvcf2")
    store, src = tiny
    vcf = write_patient(tmp_path / "p.vcf", ["P1"], [
        "chr1 1000 . A C,G 50 PASS DP=5 GT 0/2",
        "chr1 1500 . A C 50 PASS . GT 0/1",
        "chr1 2000 . C T,* 50 LowQual . GT 1/2",
        "chrM 500 . A G 50 PASS . GT 1",
    ], extra_header='##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">')
    out = tmp_path / "annotated.vcf"
    r = invoke(store, "annotate", vcf, "--snapshot", TINY_NAME, "--format", "vcf", "-o", out)
    assert r.code == 0, r.err
    text = out.read_text()
    header = [ln for ln in text.splitlines() if ln.startswith("##")]
    for key in ("VRI_CLASSIFICATION", "VRI_TIER", "VRI_STARS", "VRI_REVIEW_STATUS",
                "VRI_VARIATION_ID", "VRI_GENE", "VRI_CONDITIONS"):
        assert any(ln.startswith(f"##INFO=<ID={key},Number=A,") for ln in header), key
    (prov,) = [ln for ln in header if ln.startswith("##varreinterp=")]
    assert f'Snapshot="{TINY_NAME}"' in prov and 'ReleaseDate="2024-03-01"' in prov
    assert 'Command="' in prov
    assert hashlib.sha256(src.read_bytes()).hexdigest() in prov
    from varreinterp import __version__
    assert __version__ in prov

    with pysam.VariantFile(str(out)) as fh:
        assert fh.header.info["VRI_CLASSIFICATION"].number == "A"
        recs = {rec.pos: rec for rec in fh}
        info = {pos: dict(rec.info) for pos, rec in recs.items()}
    assert info[1000]["VRI_CLASSIFICATION"] == (".", "Pathogenic")
    assert info[1000]["VRI_STARS"] == (None, 2)
    assert info[1000]["DP"] == 5
    # Commas inside one value are percent-encoded, so each ALT keeps exactly one value.
    assert info[1000]["VRI_CONDITIONS"] == (".", "Foo%2C_type_1|Bar_syndrome")
    assert info[1000]["VRI_REVIEW_STATUS"] == (
        ".", "criteria_provided%2C_multiple_submitters%2C_no_conflicts")
    assert info[2000]["VRI_CLASSIFICATION"] == ("Uncertain_significance", ".")
    assert info[500]["VRI_TIER"] == ("pathogenic",)
    assert not any(k.startswith("VRI_") for k in info[1500])  # not in the snapshot

    reader = cyvcf2.VCF(str(out))
    seen = {v.POS: (v.INFO.get("VRI_CLASSIFICATION"), v.INFO.get("VRI_STARS")) for v in reader}
    reader.close()
    assert seen == {1000: (".,Pathogenic", (None, 2)), 1500: (None, None),
                    2000: ("Uncertain_significance,.", (1, None)), 500: ("Pathogenic", 3)}


def test_parquet_output_has_the_json_rows(tiny, carrier_of_everything, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    store, _ = tiny
    out = tmp_path / "f.parquet"
    r = invoke(store, "annotate", carrier_of_everything, "--snapshot", TINY_NAME, "--format",
               "parquet", "-o", out)
    assert r.code == 0, r.err
    assert r.out == ""
    table = pq.read_table(out)
    assert table.column_names == ANNOTATION_COLUMNS
    js = json_rows(annotate(store, carrier_of_everything).out)
    assert table.to_pylist() == [{k: row[k] for k in ANNOTATION_COLUMNS} for row in js]
    assert b"varreinterp" in (table.schema.metadata or {})
    assert invoke(store, "annotate", carrier_of_everything, "--snapshot", TINY_NAME,
                  "--format", "parquet").code == 2


def test_vcf_provenance_names_the_command(tiny, tmp_path):
    """As a console command (subprocess), the ##varreinterp line records that command."""
    exe = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "varreinterp"
    if not exe.exists():
        pytest.skip(f"{exe} is not installed")
    store, _ = tiny
    vcf = write_patient(tmp_path / "p.vcf", ["P1"], ["chr1 1000 . A G 50 PASS . GT 0/1"])
    proc = subprocess.run([str(exe), "--store", str(store), "annotate", str(vcf), "--snapshot",
                           TINY_NAME, "--format", "vcf"], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    (prov,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("##varreinterp=")]
    command = re.search(r'Command="([^"]*)"', prov).group(1)
    assert f"annotate {vcf} --snapshot {TINY_NAME} --format vcf" in command


def test_in_process_provenance_names_the_command(tiny, tmp_path):
    """Regression: provenance recorded sys.argv (the host process), not run()'s argv."""
    store, _ = tiny
    vcf = write_patient(tmp_path / "p.vcf", ["P1"], ["chr1 1000 . A G 50 PASS . GT 0/1"])
    r = invoke(store, "annotate", vcf, "--snapshot", TINY_NAME, "--format", "tsv")
    assert r.code == 0, r.err
    assert f"annotate {vcf} --snapshot {TINY_NAME} --format tsv" in r.out.splitlines()[0]


# ------------------------------------------------------------------------------ bad input
def test_truncated_gzip_exits_3_and_writes_nothing(tiny, tmp_path):
    store, _ = tiny
    records = [f"chr1 {10_000 + i} . A G 50 PASS . GT 0/1" for i in range(20_000)]
    full = write_patient(tmp_path / "full.vcf.gz", ["P1"], records)
    data = full.read_bytes()
    truncated = tmp_path / "truncated.vcf.gz"
    truncated.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out.json"
    r = invoke(store, "annotate", truncated, "--snapshot", TINY_NAME, "--format", "json",
               "-o", out)
    assert r.code == 3
    assert str(truncated) in r.err
    assert "gzip" in r.err
    assert not out.exists()
    assert not list(tmp_path.glob(".out.json*"))  # no temporary leftover either


def test_truncated_inside_header_exits_3(tiny, tmp_path):
    store, _ = tiny
    full = write_patient(tmp_path / "full.vcf.gz", ["P1"], ["chr1 1000 . A G 50 PASS . GT 0/1"])
    short = tmp_path / "short.vcf.gz"
    short.write_bytes(full.read_bytes()[:60])
    out = tmp_path / "out.tsv"
    r = invoke(store, "annotate", short, "--snapshot", TINY_NAME, "--format", "tsv", "-o", out)
    assert r.code == 3
    assert str(short) in r.err
    assert not out.exists()


@pytest.mark.parametrize("fmt", ["json", "vcf", "parquet"])
def test_malformed_line_names_file_and_line(tiny, tmp_path, fmt):
    store, _ = tiny
    vcf = write_patient(tmp_path / "bad.vcf", ["P1"], [
        "chr1 1000 . A G 50 PASS . GT 0/1",
        "chr1 2000 . C T 50 PASS . GT 0/1",
        "chr1 abc . G A 50 PASS . GT 0/1",
        "chr1 5000 . T C 50 PASS . GT 0/1",
    ])
    lines = vcf.read_text().splitlines()
    line_no = next(i for i, ln in enumerate(lines, start=1) if "\tabc\t" in ln)
    assert line_no == len(lines) - 1  # data line 3
    out = tmp_path / f"out.{fmt}"
    r = invoke(store, "annotate", vcf, "--snapshot", TINY_NAME, "--format", fmt, "-o", out)
    assert r.code == 3
    assert f"{vcf}:{line_no}:" in r.err
    assert not out.exists()


def test_missing_file_exits_3(tiny, tmp_path):
    store, _ = tiny
    out = tmp_path / "out.json"
    missing = tmp_path / "nope.vcf"
    r = invoke(store, "annotate", missing, "--snapshot", TINY_NAME, "--format", "json",
               "-o", out)
    assert r.code == 3
    assert str(missing) in r.err
    assert not out.exists()


@pytest.mark.parametrize("header", [
    {"extra_header": "##reference=GRCh37", "contigs": {}},
    {"extra_header": "##reference=file:///refs/hs37d5.fa", "contigs": {}},
    {"contigs": {"1": 249250621}},  # GRCh37 chr1 length
])
def test_build_mismatch_from_header(tiny, tmp_path, header):
    store, _ = tiny
    vcf = write_patient(tmp_path / "p37.vcf", ["P1"], ["1 1000 . A G 50 PASS . GT 0/1"],
                        **header)
    out = tmp_path / "o.json"
    r = invoke(store, "annotate", vcf, "--snapshot", TINY_NAME, "--format", "json", "-o", out)
    assert r.code == 3
    assert "GRCh37" in r.err and "GRCh38" in r.err
    assert not out.exists()


def test_failed_input_check_leaks_no_temporary_directory(tiny, tmp_path):
    """Regression: prepare_inputs left its TemporaryDirectory to the garbage collector
    (ResourceWarning) when a check failed after creating it."""
    import gc
    import warnings

    store, _ = tiny
    vcf = write_patient(tmp_path / "p.vcf", ["P1"], ["chr1 1000 . A G 50 PASS . GT 0/1"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = annotate(store, vcf, "--sample", "NOBODY")
        gc.collect()
    assert r.code == 2
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_vcf_output_with_blank_line_in_body(tiny, tmp_path):
    """Regression: --format vcf counted an empty body line as a record (the columnar reader
    skips it), shifting annotations and crashing with exit 70."""
    store, _ = tiny
    vcf = tmp_path / "blank.vcf"
    write_patient(vcf, ["P1"], ["chr1 1000 . A G 50 PASS . GT 0/1"])
    vcf.write_text(vcf.read_text() + "\nchr1\t4000\t.\tG\tA\t50\tPASS\t.\tGT\t0/1\n")
    table = annotate(store, vcf)
    assert table.code == 0, table.err  # the table formats accept the blank line
    assert {r["pos"] for r in json_rows(table.out)} == {1000, 4000}
    out = tmp_path / "o.vcf"
    r = invoke(store, "annotate", vcf, "--snapshot", TINY_NAME, "--format", "vcf", "-o", out)
    assert r.code == 0, r.err
    recs = [ln.split("\t") for ln in out.read_text().splitlines()
            if ln and not ln.startswith("#")]
    assert [(f[1], "VRI_CLASSIFICATION=Pathogenic" in f[7]) for f in recs] == [("1000", True),
                                                                               ("4000", False)]
    assert "VRI_CLASSIFICATION=Benign" in recs[1][7]


# ------------------------------------------------------------------------------ sample_vcfs
README_VARIANT = re.compile(r"`(\w+):(\d+) ([ACGT]+)>([ACGT]+)`")


def readme_tables() -> list[dict]:
    """Rows of both tables of sample_vcfs/README.md: variant, label, class per release, calls."""
    rows = []
    for line in (SAMPLES / "README.md").read_text().splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        m = README_VARIANT.fullmatch(cells[0])
        assert m, cells[0]
        if len(cells) == 7:
            old, new, kind, calls = cells[3], cells[4], cells[5], cells[6]
        else:
            assert len(cells) == 5, line
            old = new = cells[3]
            kind, calls = "unchanged", cells[4]
        rows.append({
            "chrom": m.group(1), "pos": int(m.group(2)), "ref": m.group(3), "alt": m.group(4),
            "label": cells[2], "old": readme_class(old), "new": readme_class(new),
            "kind": kind,
            "calls": [(s, gt.replace("\\|", "|")) for s, gt in
                      re.findall(r"(\w+) `([^`]+)`", calls)],
        })
    return rows


def readme_class(cell: str) -> tuple[str, int] | None:
    if cell.startswith("(absent)") or cell.startswith("`(no CLNSIG)`"):
        return None
    term = re.match(r"`([^`]+)`", cell).group(1).replace("\\|", "|")
    stars = int(re.search(r"\((\d)★\)", cell).group(1))
    return term, stars


def reported(gt: str) -> bool:
    alleles = re.split(r"[/|]", gt)
    return "." not in alleles and any(a != "0" for a in alleles)


def zygosity(gt: str) -> str:
    alleles = re.split(r"[/|]", gt)
    if len(alleles) == 1:
        return "hemi"
    return "hom" if len(set(alleles)) == 1 else "het"


def patient_chrom(vcf: str, chrom: str) -> str:
    if vcf == "trio.vcf":
        return chrom
    return "chrM" if chrom == "MT" else f"chr{chrom}"


@pytest.fixture(scope="module")
def bundled(tmp_path_factory) -> tuple[Path, str, str]:
    store = tmp_path_factory.mktemp("bundled") / "store"
    a = add_snapshot(Store(store), SAMPLES / "clinvar_GRCh38_2024-01-07.vcf").snapshot.name
    b = add_snapshot(Store(store), SAMPLES / "clinvar_GRCh38_2024-06-02.vcf").snapshot.name
    return store, a, b


@pytest.mark.parametrize("vcf, samples", [
    ("patient_single.vcf.gz", {"PATIENT01"}),
    ("trio.vcf", {"CHILD01", "MOTHER01", "FATHER01"}),
])
@pytest.mark.parametrize("release", ["old", "new"])
def test_bundled_samples_match_the_readme(bundled, vcf, samples, release):
    from varreinterp.vocabulary import classify

    store, old_name, new_name = bundled
    name = old_name if release == "old" else new_name
    r = invoke(store, "annotate", SAMPLES / vcf, "--snapshot", name, "--format", "json")
    assert r.code == 0, r.err
    rows = json_rows(r.out)
    expected = {}
    for row in readme_tables():
        cls = row[release]
        for sample, gt in row["calls"]:
            if sample in samples and cls is not None and reported(gt):
                key = (sample, patient_chrom(vcf, row["chrom"]), row["pos"], row["ref"],
                       row["alt"])
                expected[key] = (classify(cls[0]).term, cls[1], zygosity(gt))
    got = {(r["sample"], r["chrom"], r["pos"], r["ref"], r["alt"]):
           (r["classification"], r["stars"], r["zygosity"]) for r in rows}
    assert got == expected
    assert len(rows) == len(got)


def test_bundled_readme_anchors(bundled):
    """The README's named cases, spelled out."""
    store, old_name, new_name = bundled
    single = json_rows(invoke(store, "annotate", SAMPLES / "patient_single.vcf.gz",
                              "--snapshot", new_name, "--format", "json").out)
    by_pos = {(r["chrom"], r["pos"]): r for r in single}
    assert by_pos[("chrM", 13520)]["zygosity"] == "hemi"
    assert by_pos[("chrM", 13520)]["classification"] == "Pathogenic"
    second_alt = by_pos[("chr17", 43057100)]
    assert (second_alt["ref"], second_alt["alt"], second_alt["zygosity"]) == ("G", "A", "het")
    assert by_pos[("chr17", 43071000)]["filter"] == "LowQual"
    assert ("chr17", 7675990) not in by_pos  # ./.

    trio = invoke(store, "annotate", SAMPLES / "trio.vcf", "--snapshot", new_name, "--format",
                  "json")
    rows = json_rows(trio.out)
    keys = hit_keys(rows)
    assert ("CHILD01", "19", 11113400, "G", "A") not in keys  # ./1 half-call
    assert ("MOTHER01", "19", 11113400, "G", "A") in keys
    assert ("CHILD01", "17", 7675990, "CA", "C") in keys      # prefix-pad
    assert ("FATHER01", "14", 23415300, "G", "A") in keys     # suffix-pad
    assert stats(trio.err)["skipped"]["half_call"] == 1
