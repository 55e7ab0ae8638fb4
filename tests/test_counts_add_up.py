"""The stderr counts of annotate, diff and history add up: every call of a file is carried
(reported, or repeated: duplicate_record) or counted under exactly one reason, and every
matched call or change a filter hides is counted. Each case here was once a count that did not
add up: a REF the FASTA contradicts counted once per site while its calls stayed "carried";
one sample in two files reported twice with two zygosities; --tier/--min-stars and diff's
priority threshold shrinking the output without a word."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from builders import json_rows, write_clinvar, write_patient
from conftest import CliResult

FROM, TO = "2024-01-01", "2024-06-01"
# A hand-made chr1: pos 5 is C, pos 9 is T, pos 20 is C.
SEQUENCE = "ACGTCAGGTC" * 10
NO_CONTIGS: dict[str, int] = {}  # the FASTA decides; no ##contig line to compare with it

# (pos, ref, alt) on chr1 -> ((class, stars) in FROM, (class, stars) in TO, gene)
VARIANTS = {
    (5, "C", "T"): (("Uncertain_significance", 1), ("Pathogenic", 1), "G1"),
    (9, "A", "G"): (("Uncertain_significance", 1), ("Pathogenic", 1), "G1"),  # FASTA: T
    (20, "GA", "G"): (("Uncertain_significance", 1), ("Pathogenic", 1), "G1"),  # FASTA: C..
    (1000, "C", "T"): (("Uncertain_significance", 1), ("Pathogenic", 1), "G1"),  # high
    (2000, "G", "A"): (("Benign", 2), ("Uncertain_significance", 2), "G2"),  # medium
    (3000, "A", "G"): (("Pathogenic", 1), ("Pathogenic", 2), "G1"),  # low: review
    (4000, "T", "C"): (("Likely_pathogenic", 3), ("Pathogenic", 3), "G2"),  # low: same tier
}
# Every VARIANT is a change from FROM to TO: 4 high, 1 medium, 2 low.
BELOW_MEDIUM = 2

PER_FILE = re.compile(r"^varreinterp: INFO: (\S+): \d+ records, (?:\d+ alleles after "
                      r"splitting, )?(\d+) carried calls, (\d+) (?:matched|change|history)"
                      r".*; not reported: (.*)$", re.M)


@pytest.fixture
def store(tmp_path: Path, cli) -> Path:
    """A store with two GRCh38 ClinVar-format releases of VARIANTS; the folder for inputs."""
    for k, date in enumerate((FROM, TO)):
        records = [("1", p, r, a, classes[k][0], classes[k][1], gene, None)
                   for (p, r, a), (*classes, gene) in VARIANTS.items()]
        result = cli("snapshot", "add", write_clinvar(tmp_path / f"clinvar_{date}.vcf",
                                                      records, date=date))
        assert result.code == 0, result.err
    return tmp_path


@pytest.fixture
def fasta(tmp_path: Path) -> Path:
    path = tmp_path / "chr1.fa"
    path.write_text(">chr1\n" + SEQUENCE + "\n")
    return path


def patient(path: Path, samples: list[str], records: list[str]) -> Path:
    return write_patient(path, samples, records, contigs=NO_CONTIGS,
                         extra_header="##reference=GRCh38")


def run_command(cli, command: str, *args: str | Path) -> CliResult:
    """annotate (against the newer release), diff or history, with JSON rows on stdout."""
    extra: tuple[str, ...] = {"annotate": ("--snapshot", TO), "diff": ("--from", FROM),
                              "history": ("--all",)}[command]
    result = cli(command, *args, *extra, "-f", "json")
    assert result.code == 0, result.err
    return result


def rows(result: CliResult) -> list[dict]:
    """The JSON rows on stdout, without diff's leading provenance line."""
    return [r for r in json_rows(result.out) if "provenance" not in r]


def per_file(err: str) -> dict[str, tuple[int, int, dict[str, int]]]:
    """file -> (carried calls, matched calls / changes / history rows, not reported)."""
    out = {}
    for path, carried, found, reasons in PER_FILE.findall(err):
        skipped = {} if reasons == "nothing" else {
            reason: int(n) for reason, n in (part.rsplit(" ", 1) for part in reasons.split(", "))}
        out[path] = (int(carried), int(found), skipped)
    return out


COMMANDS = ["annotate", "diff", "history"]


# ------------------------------------------------------------- a REF the FASTA contradicts
@pytest.mark.parametrize("command", COMMANDS)
def test_a_ref_mismatch_counts_every_call_it_removes(store, cli, fasta, command):
    """Three samples carry chr1:9 A>G where the FASTA has T: three calls leave the report,
    three are counted, and none of them is still counted as carried."""
    p = patient(store / "p.vcf", ["S1", "S2", "S3"], [
        "chr1 5 . C T 50 PASS . GT 0/1 0/0 1/1",
        "chr1 9 . A G 50 PASS . GT 0/1 0/1 1/1"])
    without = run_command(cli, command, p)
    carried, found, skipped = per_file(without.err)[str(p)]
    assert (carried, skipped) == (5, {"hom_ref": 1})
    assert found == (5 if command != "history" else len(rows(without)))
    result = run_command(cli, command, p, "--reference", fasta)
    assert {(r["sample"], r["pos"]) for r in rows(result)} == {("S1", 5), ("S3", 5)}
    carried, found, skipped = per_file(result.err)[str(p)]
    assert (carried, skipped) == (2, {"hom_ref": 1, "ref_mismatch": 3})
    assert found == (2 if command != "history" else len(rows(result)))
    # said as a warning, not only counted: a wrong FASTA or a stale .fai drops most calls
    assert f"WARNING: {p}: 3 call(s) not reported because their REF disagrees with " \
        f"--reference {fasta}" in result.err, result.err
    assert "WARNING" not in without.err.replace("stale", ""), without.err
    assert carried + sum(skipped.values()) == 2 * 3  # every call once: records x samples


@pytest.mark.parametrize("command", COMMANDS)
def test_an_indel_ref_mismatch_is_counted_per_call_like_an_snv(store, cli, fasta, command):
    """An indel's REF is checked while normalizing, before genotypes are counted: it was
    counted once per allele ("ref_mismatch 1" for two carriers) and its 0/0 not at all."""
    p = patient(store / "p.vcf", ["S1", "S2", "S3"], [
        "chr1 20 . GA G 50 PASS . GT 0/1 1/1 0/0"])
    assert {r["pos"] for r in rows(run_command(cli, command, p))} == {20}
    result = run_command(cli, command, p, "--reference", fasta)
    assert rows(result) == []
    carried, _, skipped = per_file(result.err)[str(p)]
    assert (carried, skipped) == (0, {"hom_ref": 1, "ref_mismatch": 2})


# ------------------------------------------------------------- one sample in two files
def merged_rows(command: str, result: CliResult) -> list[tuple]:
    return sorted((r["sample"], r["chrom"], r["pos"], r["zygosity"], r.get("snapshot"))
                  for r in rows(result))


@pytest.mark.parametrize("command", COMMANDS)
def test_one_sample_in_two_files_is_merged_like_a_repeat_in_one_file(store, cli, command):
    """The README: one sample in two files "is read as one patient" and a repeated record
    "is reported once". The same two records in one file gave one row (het,hom) and
    duplicate_record 1; in two files, two rows (het, hom) and no count."""
    first = "chr1 1000 . C T 50 PASS . GT 0/1"
    second = ["chr1 1000 . C T 50 PASS . GT 1/1", "chr1 2000 . G A 50 PASS . GT 0/1"]
    a = patient(store / "a.vcf", ["P"], [first])
    b = patient(store / "b.vcf", ["P"], second)
    one = patient(store / "ab.vcf", ["P"], [first, *second])
    split, whole = run_command(cli, command, a, b), run_command(cli, command, one)
    assert merged_rows(command, split) == merged_rows(command, whole)
    zygosity = {r["pos"]: r["zygosity"] for r in rows(split)}
    assert zygosity == {1000: "het,hom", 2000: "het"}
    per_pos = [r["pos"] for r in rows(split)].count(1000)
    assert per_pos == (2 if command == "history" else 1)  # history: once per snapshot
    counts = per_file(split.err)
    assert counts[str(a)][2] == {} and counts[str(b)][2] == {"duplicate_record": 1}
    assert per_file(whole.err)[str(one)][2] == {"duplicate_record": 1}
    # a call is reported by the first file holding it; the counts add up over the files
    assert sum(c[1] for c in counts.values()) == per_file(whole.err)[str(one)][1]
    reverse = run_command(cli, command, b, a)
    assert merged_rows(command, reverse) == merged_rows(command, split)
    assert per_file(reverse.err)[str(a)][2] == {"duplicate_record": 1}


# ------------------------------------------------------------- filters that hide matches
SUMMARY = re.compile(r"INFO: (\d+) classified variant call\(s\) .*?(?:; (\d+) excluded by "
                     r"([^;\n]+))?(?:; (\d+) outside [^\n]*)?$", re.M)


@pytest.mark.parametrize(("options", "listed", "excluded", "words", "outside"), [
    ((), {1000, 2000, 3000, 4000}, None, None, None),
    (("--min-stars", "2"), {2000, 3000, 4000}, 1, "--min-stars 2", None),
    (("--tier", "pathogenic"), {1000, 3000, 4000}, 1, "--tier pathogenic", None),
    (("--tier", "pathogenic", "--min-stars", "2"), {3000, 4000}, 2,
     "--tier pathogenic and --min-stars 2", None),
    (("--tier", "pathogenic", "--genes", "G1"), {1000, 3000}, 1, "--tier pathogenic", 1),
])
def test_annotate_counts_the_matches_its_filters_leave_out(store, cli, options, listed,
                                                          excluded, words, outside):
    """--genes said "N outside genes", --tier/--min-stars nothing: "matched" shrank."""
    p = patient(store / "p.vcf", ["P"], [f"chr1 {pos} . {ref} {alt} 50 PASS . GT 0/1"
                                         for pos, ref, alt in VARIANTS if pos >= 1000])
    result = run_command(cli, "annotate", p, *options)
    assert {r["pos"] for r in rows(result)} == listed
    _, matched, _ = per_file(result.err)[str(p)]
    assert matched == 4  # the filters apply to what matched
    m = SUMMARY.search(result.err)
    assert m, result.err
    classified = int(m.group(1))
    assert classified == len(listed)
    assert (int(m.group(2)) if m.group(2) else None) == excluded
    assert m.group(3) == words
    assert (int(m.group(4)) if m.group(4) else None) == outside
    assert classified + (excluded or 0) + (outside or 0) == matched


@pytest.mark.parametrize(("options", "listed", "hidden"), [
    ((), 2, BELOW_MEDIUM),
    (("--min-priority", "high"), 1, 3),
    (("--all",), 4, 0),
])
def test_diff_says_how_many_lower_priority_changes_it_does_not_list(store, cli, options,
                                                                   listed, hidden):
    """reanalyze and report said "N lower-priority change(s)"; diff hid them silently."""
    p = patient(store / "p.vcf", ["P"], [f"chr1 {pos} . {ref} {alt} 50 PASS . GT 0/1"
                                         for pos, ref, alt in VARIANTS if pos >= 1000])
    result = cli("diff", p, "--from", FROM, *options, "-f", "json")
    assert result.code == 0, result.err
    assert len(rows(result)) == listed
    threshold = {"--min-priority": "high", "--all": "low"}.get(options[0] if options else "",
                                                              "medium")
    phrase = (f"{hidden} lower-priority change(s) (below {threshold}) not listed"
              if hidden else "lower-priority")
    assert (phrase in result.err) == bool(hidden), result.err


def test_snapshot_diff_says_how_many_lower_priority_changes_it_does_not_list(store, cli):
    result = cli("snapshot", "diff", FROM, TO, "-f", "tsv")
    assert result.code == 0, result.err
    assert f"{len(VARIANTS) - BELOW_MEDIUM} change(s) at or above medium" in result.err
    assert f"{BELOW_MEDIUM} lower-priority change(s) (below medium) not listed" in result.err
    everything = cli("snapshot", "diff", FROM, TO, "--all", "-f", "tsv")
    assert "lower-priority" not in everything.err


def test_cohort_add_says_the_calls_a_reference_drops(store, cli, fasta):
    """cohort add stores no allele whose REF the FASTA contradicts: its later changes are
    never delivered, so the drop is a warning, not only an INFO count."""
    p = patient(store / "p.vcf", ["S1"], ["chr1 20 . GA G 50 PASS . GT 0/1",
                                          "chr1 5 . C T 50 PASS . GT 0/1"])
    res = cli("cohort", "add", p, "--baseline", FROM, "--reference", fasta)
    assert res.code == 0, res.err
    assert f"WARNING: {p}: 1 call(s) not reported because their REF disagrees with " \
        f"--reference {fasta}" in res.err, res.err
