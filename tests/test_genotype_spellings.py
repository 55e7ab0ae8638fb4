"""Genotypes written in ways the fast paths do not expect, read as htslib reads them or refused:
an allele index with leading zeros ('01' is allele 1), VCF 4.5 local genotypes (LGT without
GT: every call used to be 'no_genotype', exit 0), a FORMAT without GT in every record (said),
an empty sample name (refused), and a sample name too long for a file name (its report used to
stop every nightly run with exit 74)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from builders import json_rows, write_clinvar, write_patient
from conftest import CliResult

OLD, NEW = "2024-01-07", "2024-02-04"
SITES = [("1", 10100, "C", "A"), ("1", 10200, "G", "A")]


def ok(res: CliResult, *codes: int) -> CliResult:
    assert res.code in (codes or (0,)), (res.code, res.err)
    return res


@pytest.fixture
def releases(tmp_path: Path, cli) -> Path:
    """Two releases in which every site goes from VUS to Pathogenic."""
    for date, sig in ((OLD, "Uncertain_significance"), (NEW, "Pathogenic")):
        ok(cli("snapshot", "add", write_clinvar(
            tmp_path / f"clinvar_{date}.vcf", [(*s, sig, 1, "GENE1", None) for s in SITES],
            date=date)))
    return tmp_path


def calls_of(res: CliResult) -> set[tuple[str, int, str]]:
    return {(r["sample"], int(r["pos"]), r["zygosity"]) for r in json_rows(res.out)
            if "sample" in r}


def test_allele_indexes_with_leading_zeros_are_read_as_numbers(releases: Path, cli) -> None:
    vcf = write_patient(releases / "lz.vcf", ["S1", "S2", "S3"], [
        "1 10100 . C A 50 PASS . GT 01/0 0/01 01/01",
        "1 10200 . G A 50 PASS . GT 1/01 001 0/1"])
    # as bcftools reads them: 10100 S1=1/0 S2=0/1 S3=1/1; 10200 S1=1/1 S2=1 S3=0/1
    expected = {("S1", 10100, "het"), ("S2", 10100, "het"), ("S3", 10100, "hom"),
                ("S1", 10200, "hom"), ("S2", 10200, "hemi"), ("S3", 10200, "het")}
    assert calls_of(ok(cli("annotate", vcf, "-f", "json"))) == expected
    res = ok(cli("diff", vcf, "--from", OLD, "-f", "json", "--exit-code"), 1)
    assert calls_of(res) == expected
    if shutil.which("bcftools"):
        out = subprocess.run(["bcftools", "query", "-f", "[%SAMPLE %GT\\n]", str(vcf)],
                             capture_output=True, text=True, check=True).stdout.split()
        assert out == ["S1", "1/0", "S2", "0/1", "S3", "1/1", "S1", "1/1", "S2", "1",
                       "S3", "0/1"]


def test_local_genotypes_without_gt_are_refused(releases: Path, cli) -> None:
    vcf = write_patient(releases / "lgt.vcf", ["S1", "S2"], [
        "1 10100 . C A 50 PASS . GT 0/1 0/0",
        "1 10200 . G A,T 50 PASS . LAA:LGT 1:0/1 1,2:1/2"],
        extra_header='##FORMAT=<ID=LAA,Number=.,Type=Integer,Description="local alleles">\n'
                     '##FORMAT=<ID=LGT,Number=1,Type=String,Description="local GT">')
    for args in (["annotate", vcf], ["diff", vcf, "--from", OLD],
                 ["cohort", "add", vcf, "--baseline", OLD]):
        res = cli(*args)
        assert res.code == 3, (args, res.code, res.err)
        assert f"{vcf}:{vcf.read_text().count(chr(10)) }: FORMAT has LGT" in res.err, res.err
    assert not (releases / "store" / "cohort" / "patients.json").exists() or \
        "S1" not in (releases / "store" / "cohort" / "patients.json").read_text()


def test_a_file_without_any_gt_is_said(releases: Path, cli) -> None:
    vcf = write_patient(releases / "nogt.vcf", ["S1"], [
        "1 10100 . C A 50 PASS . DP 30", "1 10200 . G A 50 PASS . DP 12"],
        extra_header='##FORMAT=<ID=DP,Number=1,Type=Integer,Description="depth">')
    res = ok(cli("annotate", vcf, "-f", "tsv"))
    assert "no record gives a GT for the selected samples" in res.err, res.err
    # a file with GT on some records only is not warned about
    some = write_patient(releases / "some.vcf", ["S1"], [
        "1 10100 . C A 50 PASS . DP 30", "1 10200 . G A 50 PASS . GT 0/1"],
        extra_header='##FORMAT=<ID=DP,Number=1,Type=Integer,Description="depth">')
    res = ok(cli("annotate", some, "-f", "json"))
    assert "no record gives a GT" not in res.err
    assert calls_of(res) == {("S1", 10200, "het")}


def test_an_empty_sample_name_is_refused(releases: Path, cli) -> None:
    vcf = write_patient(releases / "empty.vcf", ["S1", ""], ["1 10100 . C A 50 PASS . GT 0/1"])
    vcf.write_text(vcf.read_text().replace("0/1\n", "0/1\t0/1\n"))
    for args in (["annotate", vcf], ["cohort", "add", vcf, "--baseline", OLD]):
        res = cli(*args)
        assert res.code == 3, (args, res.code, res.err)
        assert "sample column 2 of the #CHROM line has an empty name" in res.err, res.err


def test_a_very_long_sample_name_does_not_stop_the_nightly_run(releases: Path, cli) -> None:
    long_name = "P" * 300
    vcf = write_patient(releases / "joint.vcf", ["CHILD01", long_name],
                        ["1 10100 . C A 50 PASS . GT 0/1 0/1"])
    ok(cli("cohort", "add", vcf, "--baseline", OLD))
    out = releases / "reports"
    ok(cli("reanalyze", "--exit-code", "-o", out), 1)
    files = sorted(p.name for p in (out / "patients").iterdir())
    assert "CHILD01.tsv" in files and "CHILD01.html" in files
    long_files = [f for f in files if f.startswith("PPP")]
    assert len(long_files) == 2 and all(len(f) < 255 for f in long_files), long_files
    rows = (out / "patients" / [f for f in long_files if f.endswith(".tsv")][0]).read_text()
    assert long_name in rows
