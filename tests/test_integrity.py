"""Inputs that used to be read partially or misread with exit 0 (issue: nothing read partially,
nothing misread). Each case asserts the exact exit code, one stderr line naming the file (and the
line where there is one), an unchanged store and no output file."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from builders import hit_keys, json_rows, stats, write_clinvar, write_patient
from conftest import invoke, shared

from varreinterp.snapshots import add_snapshot
from varreinterp.store import Store

GVCF = "patients/GRCh37/NA12878.platinum.gvcf.chrM_chr1start.vcf.gz"
TINY = [
    ("1", 1000, "A", "G", "Pathogenic", 2, "GA", None),
    ("6", 26091500, "T", "C", "Pathogenic", 2, "HFE", None),
    ("1", 2000, "C", "T", "Uncertain_significance", 1, "GB", None),
]


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    add_snapshot(Store(store), write_clinvar(tmp_path / "clinvar_tiny.vcf", TINY), name="tiny")
    return store


def refused(r, code: int, *needles: str) -> None:
    """One stderr line naming what is wrong; nothing on stdout."""
    assert r.code == code, r.err
    assert r.out == ""
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert len(lines) == 1, r.err
    for needle in needles:
        assert needle in lines[0], r.err


def snapshot_state(store: Path) -> list[str]:
    return sorted(str(p.relative_to(store)) for p in store.rglob("*")
                  if "tmp" not in p.relative_to(store).parts and p.name != "lock")


# ------------------------------------------------------------------------------ POS
@pytest.mark.parametrize("pos", ["26091499.6", "2.60915e7", "+26091500", " 26091500",
                                 "26_091_500", "0", "-5", "2147483648", "26091500x"])
def test_a_patient_pos_that_is_not_plain_digits_is_refused(tiny, tmp_path, pos):
    vcf = write_patient(tmp_path / "p.vcf", ["P1"], ["chr1 1000 . A G 50 PASS . GT 0/1"])
    vcf.write_text(vcf.read_text() + f"chr6\t{pos}\t.\tT\tC\t50\tPASS\t.\tGT\t1/1\n")
    out = tmp_path / "out.tsv"
    r = invoke(tiny, "annotate", vcf, "--snapshot", "tiny", "-f", "tsv", "-o", out)
    refused(r, 3, f"{vcf}:", "malformed record", repr(pos))
    assert not out.exists()


@pytest.mark.parametrize("pos", ["26091499.6", "2.60915E+07", "+26091500", "0", "-5"])
def test_a_clinvar_pos_that_is_not_plain_digits_is_refused(tmp_path, pos):
    src = write_clinvar(tmp_path / "clinvar_20240301.vcf", TINY)
    src.write_text(src.read_text().replace("\t26091500\t", f"\t{pos}\t"))
    store = tmp_path / "store"
    r = invoke(store, "snapshot", "add", src)
    refused(r, 3, str(src))
    assert not list((store / "snapshots").glob("*"))


@pytest.mark.parametrize("pos", ["2.60915E+07", "0", "-5", "26091500.0"])
def test_a_mapped_table_pos_must_be_plain_digits(tmp_path, pos):
    table = tmp_path / "lab_2024-03-01.tsv"
    table.write_text("CHROM\tPOS\tREF\tALT\tSIG\n"
                     f"6\t{pos}\tT\tC\tPathogenic\n")
    mapping = tmp_path / "lab.toml"
    mapping.write_text('[source]\nformat = "tsv"\nname = "lab"\n[columns]\ncontig = "CHROM"\n'
                       'position = "POS"\nref = "REF"\nalt = "ALT"\nclassification = "SIG"\n')
    r = invoke(tmp_path / "store", "snapshot", "add", table, "--format", "table", "--mapping",
               mapping, "--assembly", "GRCh38")
    refused(r, 3, f"{table}:2:")


# ------------------------------------------------------------------------------ genotypes
def test_gt_is_found_by_name_wherever_format_puts_it(tiny, tmp_path):
    vcf = write_patient(tmp_path / "p.vcf", ["P1", "P2"], [
        "chr1 1000 . A G 50 PASS . DP:GT:GQ 12:0/1:40 9:0/0:30",
        "chr6 26091500 . T C 50 PASS . GQ:GT 40:1/1 30:0/1",
    ])
    r = invoke(tiny, "annotate", vcf, "--snapshot", "tiny", "-f", "json")
    assert r.code == 0, r.err
    assert hit_keys(json_rows(r.out)) == {("P1", "chr1", 1000, "A", "G"),
                                          ("P1", "chr6", 26091500, "T", "C"),
                                          ("P2", "chr6", 26091500, "T", "C")}


@pytest.mark.parametrize("gt,why", [("1/x", "not an allele index"),
                                    ("0/2", "names allele 2 but the record has 1 ALT allele"),
                                    ("1/3", "names allele 3 but the record has 2 ALT alleles")])
def test_a_malformed_genotype_names_line_and_sample(tiny, tmp_path, gt, why):
    alt = "G,T" if gt == "1/3" else "G"
    vcf = write_patient(tmp_path / "p.vcf", ["P1", "P2"], [
        "chr1 500 . A G 50 PASS . GT 0/1 0/1",
        f"chr1 1000 . A {alt} 50 PASS . GT 0/1 {gt}",
    ])
    r = invoke(tiny, "annotate", vcf, "--snapshot", "tiny", "-f", "tsv")
    refused(r, 3, f"{vcf}:", "sample P2", why)
    line = int(r.err.split(f"{vcf}:")[1].split(":")[0])
    assert vcf.read_text().splitlines()[line - 1].startswith("chr1\t1000\t")


def test_two_sample_columns_with_one_name_are_refused(tiny, tmp_path):
    vcf = write_patient(tmp_path / "p.vcf", ["P1", "P1"], ["chr1 1000 . A G 50 PASS . GT 0/1 1/1"])
    r = invoke(tiny, "annotate", vcf, "--snapshot", "tiny", "-f", "tsv")
    refused(r, 3, str(vcf), "P1", "more than one column")


def test_a_repeated_record_is_reported_once_and_counted(tiny, tmp_path):
    record = "chr6 26091500 . T C 50 PASS . GT 1/1"
    vcf = write_patient(tmp_path / "p.vcf", ["P1"], [record] * 6 + [
        "chr1 1000 . A G 50 PASS . GT 0/1"])
    r = invoke(tiny, "annotate", vcf, "--snapshot", "tiny", "-f", "json")
    assert r.code == 0, r.err
    rows = json_rows(r.out)
    assert sorted((row["chrom"], row["pos"]) for row in rows) == [("chr1", 1000),
                                                                 ("chr6", 26091500)]
    assert stats(r.err)["skipped"]["duplicate_record"] == 5
    assert "2 classified variant call(s)" in r.err and "2 pathogenic" in r.err


# ------------------------------------------------------------------------------ chrM of hg19
def test_hg19_chrM_of_the_real_platinum_gvcf_never_matches_rcrs(tmp_path):
    """Every called chrM variant of the real gVCF is put at its own position in a GRCh37
    release as Pathogenic: none may match, all are counted, one warning names the contig."""
    gvcf = shared(GVCF)
    called = []
    with gzip.open(gvcf, "rt") as fh:
        for line in fh:
            f = line.rstrip("\n").split("\t")
            if line.startswith("chrM\t") and f[4] in "ACGT" and len(f[4]) == 1 \
                    and "1" in f[9].split(":")[0]:
                called.append(("MT", int(f[1]), f[3], f[4], "Pathogenic", 2, "MT-X", None))
    assert len(called) > 20
    store = tmp_path / "store"
    add_snapshot(Store(store), write_clinvar(tmp_path / "mt.vcf", called, assembly="GRCh37"),
                 name="mt37")
    r = invoke(store, "annotate", gvcf, "--snapshot", "mt37", "-f", "json")
    assert r.code == 0, r.err
    assert json_rows(r.out) == []
    assert stats(r.err)["skipped"]["non_rcrs_mitochondrion"] >= len(called)
    warnings = [ln for ln in r.err.splitlines() if "WARNING" in ln and "chrM" in ln]
    assert len(warnings) == 1 and "16,571" in warnings[0] and "hg19" in warnings[0]

    # The same calls under a 16,569 bp (rCRS) contig do match: the rule is the length.
    rcrs = tmp_path / "rcrs.vcf.gz"
    with gzip.open(gvcf, "rt") as src, gzip.open(rcrs, "wt") as dst:
        dst.write(src.read().replace("ID=chrM,length=16571", "ID=chrM,length=16569"))
    r = invoke(store, "annotate", rcrs, "--snapshot", "mt37", "-f", "json")
    assert r.code == 0, r.err
    assert len(json_rows(r.out)) == len(called)


def test_grch38_chrM_and_grch37_MT_match_as_before(tiny, tmp_path):
    store = tmp_path / "s"
    add_snapshot(Store(store), write_clinvar(tmp_path / "mt.vcf", [
        ("MT", 500, "A", "G", "Pathogenic", 2, "MT-X", None)], assembly="GRCh37"), name="m37")
    mt = write_patient(tmp_path / "b37.vcf", ["P1"], ["MT 500 . A G 50 PASS . GT 1"],
                       contigs={"1": 249250621, "MT": 16569})
    r = invoke(store, "annotate", mt, "--snapshot", "m37", "-f", "json")
    assert r.code == 0, r.err
    assert len(json_rows(r.out)) == 1
    chrm = write_patient(tmp_path / "hg19.vcf", ["P1"], ["chrM 500 . A G 50 PASS . GT 1"],
                         contigs={"chr1": 249250621})  # no length for chrM in a GRCh37 file
    r = invoke(store, "annotate", chrm, "--snapshot", "m37", "-f", "json")
    assert r.code == 0, r.err
    assert json_rows(r.out) == []
    assert stats(r.err)["skipped"]["unverified_mitochondrion"] == 1
    g38 = write_patient(tmp_path / "p38.vcf", ["P1"], ["chrM 500 . A G 50 PASS . GT 1"])
    store38 = tmp_path / "s38"
    add_snapshot(Store(store38), write_clinvar(tmp_path / "mt38.vcf", [
        ("MT", 500, "A", "G", "Pathogenic", 2, "MT-X", None)]), name="m38")
    r = invoke(store38, "annotate", g38, "--snapshot", "m38", "-f", "json")
    assert r.code == 0, r.err
    assert len(json_rows(r.out)) == 1
    assert json.loads(r.out.splitlines()[0])["chrom"] == "chrM"
