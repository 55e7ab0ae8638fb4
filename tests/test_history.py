"""`varreinterp history` on the bundled sample patient with both bundled snapshots.

The snapshots are stored under names that sort opposite to their release dates, so "oldest
first" can only come from the release date."""

from __future__ import annotations

import io
import json
import re
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from conftest import SAMPLES

from varreinterp.snapshots import add_snapshot
from varreinterp.store import Store
from varreinterp.vocabulary import classify

OLD, NEW = "z-clinvar-jan", "a-clinvar-jun"  # release 2024-01-07 and 2024-06-02
HISTORY_COLUMNS = ["sample", "chrom", "pos", "ref", "alt", "zygosity", "filter", "gene",
                   "snapshot", "release_date", "classification", "tier", "stars",
                   "review_status"]
LOW_QUAL = ("chr17", 43071000, "A", "G")  # REV1, the one call with FILTER=LowQual

# PATIENT01's carried, classified variants per the README (patient_single.vcf.gz, chr names):
# key -> (class in 2024-01-07 or None, class in 2024-06-02 or None)
PATIENT01 = {
    ("chr13", 32332400, "G", "A"): ("Uncertain_significance", "Likely_pathogenic"),   # UP1
    ("chr14", 23415300, "G", "A"): ("Pathogenic", "Uncertain_significance"),          # DOWN
    ("chr17", 43071000, "A", "G"): ("Uncertain_significance", "Uncertain_significance"),  # REV1
    ("chr13", 32340300, "C", "T"): ("Conflicting_interpretations_of_pathogenicity",
                                    "Conflicting_classifications_of_pathogenicity"),  # RENAME
    ("chr7", 117590501, "CTG", "C"): ("Likely_pathogenic", None),                     # GONE
    ("chr17", 43057100, "G", "A"): (None, "Pathogenic"),                              # NEW1
    ("chr1", 196690107, "G", "A"): ("Benign|association", "Benign|association"),
    ("chr6", 26091500, "T", "C"): ("Pathogenic,_low_penetrance", "Pathogenic,_low_penetrance"),
    ("chr10", 94781900, "G", "A"): ("drug_response", "drug_response"),
    ("chr3", 36993550, "C", "T"): ("Benign/Likely_benign", "Benign/Likely_benign"),
    ("chrM", 13520, "A", "G"): ("Pathogenic", "Pathogenic"),
}
CLASS_CHANGED = {k for k, (a, b) in PATIENT01.items()
                 if a is None or b is None or classify(a).term != classify(b).term}


def invoke(store: Path, *args: str | Path) -> tuple[int, str, str]:
    from varreinterp.cli import run

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = run(["--store", str(store), *[str(a) for a in args]])
    return int(code), out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("history") / "store"
    # Newer release imported first, and names sorting the other way round.
    add_snapshot(Store(root), SAMPLES / "clinvar_GRCh38_2024-06-02.vcf", name=NEW)
    add_snapshot(Store(root), SAMPLES / "clinvar_GRCh38_2024-01-07.vcf", name=OLD)
    return root


def history_rows(store: Path, *args: str | Path) -> list[dict]:
    code, out, err = invoke(store, "history", *args, "--format", "json")
    assert code == 0, err
    rows = [json.loads(ln) for ln in out.splitlines() if ln.strip()]
    for r in rows:
        assert set(HISTORY_COLUMNS) <= set(r)
    return rows


def by_variant(rows: list[dict]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        out.setdefault((r["chrom"], r["pos"], r["ref"], r["alt"]), []).append(r)
    return out


def check_against_readme(groups: dict[tuple, list[dict]]) -> None:
    for key, rows in groups.items():
        old, new = PATIENT01[key]
        # Every release has its row: one that does not list the variant with no class (a
        # script reading the TSV must see that ClinVar dropped it there).
        expected = [(OLD, "2024-01-07", classify(old).term if old else None),
                    (NEW, "2024-06-02", classify(new).term if new else None)]
        assert [(r["snapshot"], r["release_date"], r["classification"]) for r in rows] == \
            expected, key
        assert {r["sample"] for r in rows} == {"PATIENT01"}


def test_default_lists_only_the_four_changed_variants(store):
    rows = history_rows(store, SAMPLES / "patient_single.vcf.gz")
    groups = by_variant(rows)
    assert set(groups) == CLASS_CHANGED
    assert len(groups) == 4  # UP1, DOWN, GONE, NEW1; renames are not changes
    check_against_readme(groups)
    assert len(rows) == 8  # one per release for each: GONE and NEW1 with one absent row
    gone = [r for r in rows if r["classification"] is None]
    assert len(gone) == 2 and all(r["tier"] is None and r["stars"] is None for r in gone)
    assert all(r["gene"] for r in rows)  # an absent row keeps the variant's gene (panels)
    up1 = groups[("chr13", 32332400, "G", "A")]
    assert [(r["tier"], r["stars"]) for r in up1] == [("uncertain", 1), ("pathogenic", 1)]
    assert groups[("chr17", 43057100, "G", "A")][0]["zygosity"] == "het"


def test_all_lists_every_classified_carried_variant(store):
    default = history_rows(store, SAMPLES / "patient_single.vcf.gz")
    rows = history_rows(store, SAMPLES / "patient_single.vcf.gz", "--all")
    groups = by_variant(rows)
    assert set(groups) == set(PATIENT01)
    assert len(rows) > len(default)
    check_against_readme(groups)
    mito = groups[("chrM", 13520, "A", "G")]
    assert [r["zygosity"] for r in mito] == ["hemi", "hemi"]
    rename = groups[("chr13", 32340300, "C", "T")]
    assert {r["classification"] for r in rename} == {"Conflicting_classifications_of_pathogenicity"}
    review_only = groups[("chr17", 43071000, "A", "G")]
    assert [r["stars"] for r in review_only] == [1, 3]


def test_rows_are_in_release_date_order(store):
    rows = history_rows(store, SAMPLES / "patient_single.vcf.gz", SAMPLES / "trio.vcf", "--all")
    for key_rows in by_variant(rows).values():
        per_sample: dict[str, list[str]] = {}
        for r in key_rows:
            per_sample.setdefault(r["sample"], []).append(r["release_date"])
        for dates in per_sample.values():
            assert dates == sorted(dates)
            assert len(dates) == len(set(dates))
    # The half-call ./1 (CHILD01, LDLR 19:11113400) is not a carried variant.
    assert not [r for r in rows if r["sample"] == "CHILD01" and r["pos"] == 11113400]
    assert [r["snapshot"] for r in rows if r["sample"] == "MOTHER01" and r["pos"] == 11113400] \
        == [OLD, NEW]


def test_table_has_one_row_per_change_oldest_first(store):
    """A column per snapshot was unreadable with a dozen monthly releases: one row per change
    (the first release listing the variant, then each release where it differs)."""
    code, out, err = invoke(store, "history", SAMPLES / "patient_single.vcf.gz", "--format",
                            "table")
    assert code == 0, err
    assert "4 variant call(s) over 2 release(s)" in out
    brca2 = [ln for ln in out.splitlines() if "chr13:32332400 G>A" in ln]
    assert len(brca2) == 2
    assert "2024-01-07" in brca2[0] and "VUS" in brca2[0]
    assert "2024-06-02" in brca2[1] and "VUS → LP" in brca2[1]
    gone = [ln for ln in out.splitlines() if "chr7:117590501" in ln]
    assert "LP → absent" in gone[-1]
    for label in ("chr13:32332400 G>A", "chr14:23415300 G>A", "chr7:117590501 CTG>C",
                  "chr17:43057100 G>A"):
        assert label in out
    assert not re.search(r"chrM:13520", out)


def test_failed_qc_calls_are_visible(store):
    """issue 12: a call that failed QC looked like any other in `history`. Its FILTER is in
    TSV and JSON, and the table marks it (QC!) with the marker's legend."""
    groups = by_variant(history_rows(store, SAMPLES / "patient_single.vcf.gz", "--all"))
    assert {r["filter"] for r in groups.pop(LOW_QUAL)} == {"LowQual"}
    assert {r["filter"] for rows in groups.values() for r in rows} == {"PASS"}

    code, out, err = invoke(store, "history", SAMPLES / "patient_single.vcf.gz", "--all",
                            "--format", "tsv")
    assert code == 0, err
    lines = out.splitlines()
    header = lines[1].split("\t")
    assert header == HISTORY_COLUMNS
    rows = [dict(zip(header, ln.split("\t"), strict=True)) for ln in lines[2:]]
    assert {r["filter"] for r in rows if r["pos"] == str(LOW_QUAL[1])} == {"LowQual"}

    code, out, err = invoke(store, "history", SAMPLES / "patient_single.vcf.gz", "--all",
                            "--format", "table")
    assert code == 0, err
    marked = [ln for ln in out.splitlines() if "QC!" in ln.split() and "PATIENT01" in ln]
    assert len(marked) == 2 and all("chr17:43071000 A>G" in ln for ln in marked)
    assert "QC! = the call did not pass the variant caller's filters" in out


def test_table_has_no_qc_legend_without_failed_calls(store):
    code, out, err = invoke(store, "history", SAMPLES / "trio.vcf", "--all", "--format", "table")
    assert code == 0, err
    assert "QC!" not in out


def test_a_release_in_the_middle_that_dropped_the_variant_has_its_row(tmp_path):
    """CFTR 7:117590501 CTG>C is LP in January, gone in June, LP again in September: TSV and
    JSON showed January and September only, an unbroken LP to any script reading them."""
    root = tmp_path / "store"
    again = tmp_path / "clinvar_GRCh38_2024-09-01.vcf"
    again.write_text((SAMPLES / "clinvar_GRCh38_2024-01-07.vcf").read_text().replace(
        "##fileDate=2024-01-07", "##fileDate=2024-09-01"))
    for path, name in ((SAMPLES / "clinvar_GRCh38_2024-01-07.vcf", "jan"),
                       (SAMPLES / "clinvar_GRCh38_2024-06-02.vcf", "jun"), (again, "sep")):
        add_snapshot(Store(root), path, name=name)
    rows = by_variant(history_rows(root, SAMPLES / "patient_single.vcf.gz"))
    cftr = rows[("chr7", 117590501, "CTG", "C")]
    assert [(r["snapshot"], r["classification"]) for r in cftr] == [
        ("jan", "Likely_pathogenic"), ("jun", None), ("sep", "Likely_pathogenic")]
