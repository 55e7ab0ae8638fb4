"""Patient inputs that are each valid but would silently mislead together or against the store:
one sample name in two files of one command (two people merged into one "patient"), the
per-file "not reported" counts that every patient command must log (not only annotate), and a
--reference FASTA that lacks a contig the calls are on (left-alignment and REF check skipped:
warned once per contig)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from builders import json_rows, write_clinvar, write_patient
from conftest import CliResult

# The hand-made FASTA's chrM (rCRS length, which names no build, so any --reference check
# accepts it): an A homopolymer at 11-16, so chrM:15 AA>A is chrM:10 TA>T.
HEAD = "GATTACAGGTAAAAAAGCTCTCTCTAGCAGCAGCAGT"
SEQUENCE = HEAD + ("ACGGTC" * 3000)[:16569 - len(HEAD)]
FROM, TO = "2024-01-01", "2024-06-01"

# (chrom, pos, ref, alt) -> (class in FROM, class in TO): every one an upgrade.
VARIANTS = {
    ("MT", 10, "TA", "T"): ("Uncertain_significance", "Pathogenic"),
    ("1", 1000, "C", "T"): ("Uncertain_significance", "Pathogenic"),
    ("1", 2000, "G", "A"): ("Uncertain_significance", "Likely_pathogenic"),
    ("2", 100, "TA", "T"): ("Uncertain_significance", "Pathogenic"),
    ("2", 200, "C", "T"): ("Uncertain_significance", "Pathogenic"),
}
NO_CONTIGS: dict[str, int] = {}  # the FASTA decides; no ##contig line to compare with it


@pytest.fixture
def store(tmp_path: Path, cli) -> Path:
    """A store with two GRCh38 ClinVar-format releases in which every VARIANT is upgraded."""
    for k, date in enumerate((FROM, TO)):
        records = [(c, p, r, a, classes[k], 1, f"GENE{c}", None)
                   for (c, p, r, a), classes in VARIANTS.items()]
        result = cli("snapshot", "add", write_clinvar(tmp_path / f"clinvar_{date}.vcf",
                                                      records, date=date))
        assert result.code == 0, result.err
    return tmp_path


def patient(path: Path, samples: list[str], records: list[str]) -> Path:
    return write_patient(path, samples, records, contigs=NO_CONTIGS,
                         extra_header="##reference=GRCh38")


def rows(result: CliResult) -> list[dict]:
    """The JSON rows on stdout, without diff's leading provenance line."""
    return [r for r in json_rows(result.out) if "provenance" not in r]


def run_command(cli, command: str, *args: str | Path) -> CliResult:
    """annotate (against the newer release), diff or history, with JSON rows on stdout."""
    extra: tuple[str, ...] = {"annotate": ("--snapshot", TO), "diff": ("--from", FROM),
                              "history": ("--all",)}[command]
    return cli(command, *args, *extra, "-f", "json")


def refusal(result: CliResult) -> str:
    """The one stderr line of a usage refusal (exit 2, nothing on stdout)."""
    assert result.code == 2, result.err
    assert result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    return lines[0]


# ------------------------------------------------------------------ one sample, two files
COMMANDS = ["annotate", "diff", "history"]


def clash_warning(result: CliResult) -> str:
    """The one warning about a sample name in two files (the command ran: exit 0)."""
    assert result.code == 0, result.err
    found = [ln for ln in result.err.splitlines() if "is in both" in ln]
    assert len(found) == 1, result.err
    return found[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_one_sample_name_in_two_files_is_read_as_one_patient_and_said(store, cli, command):
    """Two people named by a caller's default (`SAMPLE`) merged without a word; one person's
    calls split by variant type (SNVs, indels) must still be read together, so it is said,
    not refused."""
    a = patient(store / "patientA.vcf", ["SAMPLE"], ["chr1 1000 . C T 50 PASS . GT 0/1"])
    b = patient(store / "patientB.vcf", ["SAMPLE"], ["chr1 1000 . C T 50 PASS . GT 1/1",
                                                     "chr1 2000 . G A 50 PASS . GT 0/1"])
    line = clash_warning(run_command(cli, command, a, b))
    assert "WARNING: sample SAMPLE is in both" in line
    assert str(a) in line and str(b) in line
    assert "run the files separately" in line and "bcftools reheader" in line


def test_one_persons_split_files_are_read_together(store, cli):
    snvs = patient(store / "snvs.vcf", ["HG004"], ["chr1 1000 . C T 50 PASS . GT 0/1"])
    indels = patient(store / "indels.vcf", ["HG004"], ["chr1 2000 . G A 50 PASS . GT 1/1"])
    result = run_command(cli, "annotate", snvs, indels)
    clash_warning(result)
    assert {(r["sample"], r["pos"], r["zygosity"]) for r in rows(result)} == {
        ("HG004", 1000, "het"), ("HG004", 2000, "hom")}


def test_distinct_names_in_two_files_stay_two_patients(store, cli):
    a = patient(store / "a.vcf", ["P1"], ["chr1 1000 . C T 50 PASS . GT 0/1"])
    b = patient(store / "b.vcf", ["P2"], ["chr1 1000 . C T 50 PASS . GT 1/1"])
    result = run_command(cli, "annotate", a, b)
    assert result.code == 0, result.err
    assert "is in both" not in result.err
    assert {(r["sample"], r["pos"], r["zygosity"]) for r in rows(result)} == {
        ("P1", 1000, "het"), ("P2", 1000, "hom")}


@pytest.mark.parametrize("command", COMMANDS)
def test_only_selected_samples_are_compared(store, cli, command):
    a = patient(store / "a.vcf", ["SAMPLE", "P1"],
                ["chr1 1000 . C T 50 PASS . GT 0/1 1/1"])
    b = patient(store / "b.vcf", ["P2", "SAMPLE"],
                ["chr1 2000 . G A 50 PASS . GT 0/1 1/1"])
    chosen = run_command(cli, command, a, b, "--sample", "P1", "--sample", "P2")
    assert chosen.code == 0, chosen.err
    assert "is in both" not in chosen.err
    assert {r["sample"] for r in rows(chosen)} == {"P1", "P2"}
    line = clash_warning(run_command(cli, command, a, b, "--sample", "SAMPLE"))
    assert "sample SAMPLE is in both" in line


def test_every_clashing_name_is_named(store, cli):
    a = patient(store / "a.vcf", ["S1", "S2"], ["chr1 1000 . C T 50 PASS . GT 0/1 0/1"])
    b = patient(store / "b.vcf", ["S2", "S1"], ["chr1 1000 . C T 50 PASS . GT 0/1 0/1"])
    line = clash_warning(run_command(cli, "annotate", a, b))
    assert "sample S2 is in both" in line and "(also: S1)" in line


def test_the_same_file_twice_is_refused(store, cli):
    a = patient(store / "a.vcf", ["P1"], ["chr1 1000 . C T 50 PASS . GT 0/1"])
    line = refusal(run_command(cli, "diff", a, store / "." / "a.vcf"))
    assert "is given twice" in line


# ------------------------------------------------------------ what was not reported, per file
SKIPPED = ["chr1 1000 . C T 50 PASS . GT 1/.",        # half-call
           "chr1 2000 . G A 50 LowQual . GT 0/1",     # filtered under --pass-only
           "chr2 200 . C T 50 PASS . GT 0/0"]         # hom-ref
NOT_REPORTED = re.compile(r"^varreinterp: INFO: (\S+): .*; not reported: (.*)$", re.M)


def not_reported(err: str) -> dict[str, str]:
    return dict(NOT_REPORTED.findall(err))


@pytest.mark.parametrize("command", ["diff", "history"])
def test_per_file_line_says_what_was_not_reported_like_annotate(store, cli, command):
    a = patient(store / "a.vcf", ["P1"], SKIPPED)
    b = patient(store / "b.vcf", ["P2"], ["chr1 1000 . C T 50 PASS . GT 0/1"])
    annotated = run_command(cli, "annotate", a, b, "--pass-only")
    assert annotated.code == 0, annotated.err
    expected = not_reported(annotated.err)
    assert expected == {str(a): "filtered_not_pass 1, half_call 1, hom_ref 1",
                        str(b): "nothing"}
    result = run_command(cli, command, a, b, "--pass-only")
    assert result.code == 0, result.err
    assert not_reported(result.err) == expected


def test_report_logs_what_was_not_reported(store, cli):
    a = patient(store / "a.vcf", ["P1"], SKIPPED)
    result = cli("report", a, "--from", FROM, "--pass-only", "-o", store / "P1.html")
    assert result.code == 0, result.err
    assert not_reported(result.err) == {str(a): "filtered_not_pass 1, half_call 1, hom_ref 1"}


# ---------------------------------------------------------------- a FASTA without the contig
UNSEQUENCED_WARNING = re.compile(
    r"^varreinterp: WARNING: (\S+): --reference (\S+) has no sequence for contig (\S+): "
    r"(\d+) record\(s\) on it were not left-aligned or REF-checked", re.M)
CALLS = ["chrM 15 . AA A 50 PASS . GT 1",        # left-aligned with the FASTA: chrM:10 TA>T
         "chr2 105 . AA A 50 PASS . GT 0/1",     # chr2:100 TA>T, but the FASTA has no chr2
         "chr2 200 . C T 50 PASS . GT 0/1",      # matched as written: REF not checked
         "chr2 300 . GT G 50 PASS . GT 1/1",
         "chr1 1000 . C T 50 PASS . GT 0/1"]


@pytest.fixture
def fasta(tmp_path: Path) -> Path:
    path = tmp_path / "chrM_only.fa"
    path.write_text(">chrM\n" + SEQUENCE + "\n")
    return path


@pytest.mark.parametrize("command", COMMANDS)
def test_one_warning_per_contig_the_fasta_lacks(store, cli, fasta, command):
    p = patient(store / "p.vcf", ["P1"], CALLS)
    result = run_command(cli, command, p, "--reference", fasta)
    assert result.code == 0, result.err
    warned = UNSEQUENCED_WARNING.findall(result.err)
    assert warned == [(str(p), str(fasta), "chr2", "3"), (str(p), str(fasta), "chr1", "1")]
    positions = {(r["chrom"], r["pos"]) for r in rows(result)}
    assert ("chrM", 10) in positions  # left-aligned where the FASTA has the sequence
    assert ("chr2", 200) in positions and ("chr1", 1000) in positions  # matched as written
    assert not any(chrom == "chr2" and pos in (100, 105) for chrom, pos in positions)


def test_no_warning_when_the_fasta_has_every_contig_or_none_is_given(store, cli, fasta):
    p = patient(store / "p.vcf", ["P1"], [CALLS[0]])
    for args in (("--reference", fasta), ()):
        result = run_command(cli, "annotate", p, *args)
        assert result.code == 0, result.err
        assert "WARNING" not in result.err
        assert [(r["chrom"], r["pos"]) for r in rows(result)] == (
            [("chrM", 10)] if args else [])
