"""Property tests of `snapshot diff` (core API, fresh store per example).

Pairs of small ClinVar-format snapshots are generated over a handful of allele keys, with terms
drawn from both the pre- and post-2024 vocabulary and both secondary-term separators, and checked
against naive_changes.naive_change applied one variant at a time over the union of keys."""

from __future__ import annotations

import random
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from naive_changes import MIRROR, naive_change

from varreinterp.changes import ChangeKind, Priority
from varreinterp.diff import diff_snapshots
from varreinterp.snapshots import add_snapshot
from varreinterp.store import Store
from varreinterp.vocabulary import classify, review_status

KEYS = [("1", 100, "A", "G"), ("1", 100, "A", "T"), ("1", 250, "CT", "C"),
        ("2", 100, "G", "GA"), ("X", 5000, "T", "C"), ("MT", 13520, "A", "G")]

CLASSIFICATIONS = [
    "Pathogenic", "Likely_pathogenic", "Pathogenic/Likely_pathogenic",
    "Pathogenic,_low_penetrance", "Uncertain_significance", "Likely_benign", "Benign",
    "Benign/Likely_benign", "Conflicting_interpretations_of_pathogenicity",
    "Conflicting_classifications_of_pathogenicity", "not_provided", "drug_response",
    "risk_factor", "association", "Benign,_association", "Benign|association",
    "Uncertain_significance,_risk_factor", "Uncertain_significance|risk_factor",
    "Likely_pathogenic,_low_penetrance", "protective",
    # the same terms in another order: no change
    "Likely_pathogenic/Pathogenic", "Pathogenic|risk_factor|association",
    "Pathogenic|association|risk_factor",
]
REVIEWS = [
    None, "practice_guideline", "reviewed_by_expert_panel",
    "criteria_provided,_multiple_submitters,_no_conflicts",
    "criteria_provided,_single_submitter", "criteria_provided,_conflicting_interpretations",
    "criteria_provided,_conflicting_classifications", "no_assertion_criteria_provided",
    "no_assertion_provided", "no_classification_provided",
]

HEADER = """##fileformat=VCFv4.1
##fileDate={date}
##source=ClinVar
##reference=GRCh38
##INFO=<ID=CLNSIG,Number=.,Type=String,Description="Clinical significance">
##INFO=<ID=CLNREVSTAT,Number=.,Type=String,Description="Review status">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO
"""

Record = tuple[tuple[str, int, str, str], str | None, str | None]  # key, CLNSIG, CLNREVSTAT


@st.composite
def snapshots(draw) -> list[Record]:
    """One snapshot: a subset of KEYS, each with a classification (or none) and a review."""
    keys = draw(st.lists(st.sampled_from(KEYS), unique=True, min_size=1, max_size=len(KEYS)))
    records = [(k, draw(st.one_of(st.none(), st.sampled_from(CLASSIFICATIONS))),
                draw(st.sampled_from(REVIEWS))) for k in keys]
    if all(sig is None for _, sig, _ in records):  # a snapshot must classify something
        records[0] = (records[0][0], "Benign", records[0][2])
    return records


def write(path: Path, records: list[Record], date: str) -> Path:
    lines = []
    for i, ((chrom, pos, ref, alt), sig, rev) in enumerate(records, start=1):
        info = [f"CLNSIG={sig}"] if sig else []
        info += [f"CLNREVSTAT={rev}"] if rev else []
        lines.append(f"{chrom}\t{pos}\t{i}\t{ref}\t{alt}\t.\t.\t{';'.join(info) or '.'}\n")
    path.write_text(HEADER.format(date=date) + "".join(lines))
    return path


def state(records: list[Record]) -> dict[tuple, tuple[str, str, int | None, str | None]]:
    out = {}
    for key, sig, rev in records:
        if sig is None:
            continue  # no germline classification: absent for the diff
        c = classify(sig)
        r = review_status(rev) if rev else None
        out[key] = (c.term, c.tier.value, r.stars if r else None, r.term if r else None)
    return out


def naive(a: list[Record], b: list[Record]) -> dict[tuple, tuple[ChangeKind, Priority]]:
    sa, sb = state(a), state(b)
    out = {}
    for key in sa.keys() | sb.keys():
        found = naive_change(sa.get(key), sb.get(key))
        if found:
            out[key] = found
    return out


def changes(store: Store, a: str, b: str) -> dict[tuple, tuple[ChangeKind, Priority]]:
    rows = diff_snapshots(store, a, b, Priority.LOW, accept_suspect=True).rows
    keys = list(zip(rows["chrom"], rows["pos"].astype(int), rows["ref"], rows["alt"],
                    strict=True))
    counts = Counter(keys)
    assert all(n == 1 for n in counts.values()), f"variant reported twice: {counts}"
    return {k: (ChangeKind(c), Priority(p))
            for k, c, p in zip(keys, rows["change"], rows["priority"], strict=True)}


SETTINGS = settings(max_examples=30, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@SETTINGS
@given(a=snapshots(), b=snapshots(), seed=st.integers(0, 2**32 - 1))
def test_diff_properties(a, b, seed):
    with tempfile.TemporaryDirectory(prefix="vri-prop-") as tmp:
        d = Path(tmp)
        store = Store(d / "store")
        na = add_snapshot(store, write(d / "a.vcf", a, "2024-01-07"), name="a").snapshot.name
        nb = add_snapshot(store, write(d / "b.vcf", b, "2024-06-02"), name="b").snapshot.name
        shuffled = list(b)
        random.Random(seed).shuffle(shuffled)
        nb2 = add_snapshot(store, write(d / "b2.vcf", shuffled, "2024-06-03"),
                           name="b2").snapshot.name

        forward = changes(store, na, nb)
        # Equal to the naive per-variant rules over the union of keys.
        assert forward == naive(a, b)
        # No change between a snapshot and itself.
        assert changes(store, na, na) == {}
        # Reversing the direction mirrors each kind and keeps each priority.
        backward = changes(store, nb, na)
        assert backward == {k: (MIRROR[kind], prio) for k, (kind, prio) in forward.items()}
        # Record order in the source file does not matter.
        assert changes(store, na, nb2) == forward


@settings(SETTINGS, max_examples=20)
@given(a=snapshots())
def test_renamed_spellings_are_never_changes(a):
    """The same snapshot written in the other era's spelling diffs to nothing."""
    swap = {
        "Conflicting_interpretations_of_pathogenicity":
            "Conflicting_classifications_of_pathogenicity",
        "Conflicting_classifications_of_pathogenicity":
            "Conflicting_interpretations_of_pathogenicity",
        "criteria_provided,_conflicting_interpretations":
            "criteria_provided,_conflicting_classifications",
        "criteria_provided,_conflicting_classifications":
            "criteria_provided,_conflicting_interpretations",
        "no_assertion_provided": "no_classification_provided",
        "no_classification_provided": "no_assertion_provided",
    }

    def respell(value: str | None) -> str | None:
        if value is None:
            return None
        value = swap.get(value, value)
        if ",_" in value and "low_penetrance" not in value and not value.startswith("criteria"):
            return value.replace(",_", "|")
        return value.replace("|", ",_") if "|" in value else value

    b = [(k, respell(sig), respell(rev)) for k, sig, rev in a]
    assert state(a) == state(b)  # our own check that the respelling is faithful
    with tempfile.TemporaryDirectory(prefix="vri-prop-") as tmp:
        d = Path(tmp)
        store = Store(d / "store")
        add_snapshot(store, write(d / "a.vcf", a, "2023-12-04"), name="old")
        add_snapshot(store, write(d / "b.vcf", b, "2024-02-05"), name="new")
        assert changes(store, "old", "new") == {}


@pytest.mark.parametrize("before, after, kind, priority", [
    (("Uncertain_significance", 1), ("Likely_pathogenic", 1), "upgrade", "high"),
    (("Pathogenic", 1), ("Uncertain_significance", 1), "downgrade", "high"),
    (("Likely_benign", 1), ("Uncertain_significance", 1), "upgrade", "medium"),
    (("Uncertain_significance", 1), ("Benign", 2), "downgrade", "medium"),
    (("Uncertain_significance", 1), ("Conflicting_classifications_of_pathogenicity", 1),
     "conflict", "medium"),
    (("Pathogenic", 2), ("Conflicting_classifications_of_pathogenicity", 1), "conflict", "high"),
    (("Conflicting_interpretations_of_pathogenicity", 1), ("Likely_benign", 2), "resolved",
     "medium"),
    (("Likely_pathogenic", 1), ("Pathogenic", 1), "reclassified", "low"),
    (("Benign", 1), ("Benign", 3), "review", "low"),
    (None, ("Pathogenic", 1), "new", "high"),
    (None, ("Benign", 1), "new", "medium"),
    (("Likely_pathogenic", 1), None, "gone", "high"),
    (("Uncertain_significance", 1), None, "gone", "medium"),
    (("Pathogenic", 0), ("not_provided", 0), "downgrade", "high"),
])
def test_each_kind_and_priority(tmp_path, before, after, kind, priority):
    stars = {0: "no_assertion_criteria_provided", 1: "criteria_provided,_single_submitter",
             2: "criteria_provided,_multiple_submitters,_no_conflicts",
             3: "reviewed_by_expert_panel"}
    key = ("7", 117559590, "ATCT", "A")
    filler = (("1", 1, "A", "G"), "Benign", stars[1])  # keeps either file non-empty
    a = [filler] + ([(key, before[0], stars[before[1]])] if before else [])
    b = [filler] + ([(key, after[0], stars[after[1]])] if after else [])
    store = Store(tmp_path / "store")
    add_snapshot(store, write(tmp_path / "a.vcf", a, "2024-01-07"), name="a")
    add_snapshot(store, write(tmp_path / "b.vcf", b, "2024-06-02"), name="b")
    assert changes(store, "a", "b") == {key: (ChangeKind(kind), Priority(priority))}
    for threshold in Priority:
        rows = diff_snapshots(store, "a", "b", threshold, accept_suspect=True).rows
        assert len(rows) == (1 if Priority(priority).rank >= threshold.rank else 0)


@pytest.mark.parametrize("before, after", [
    ("Likely_pathogenic/Pathogenic", "Pathogenic/Likely_pathogenic"),
    ("Pathogenic|risk_factor|association", "Pathogenic|association|risk_factor"),
    ("Benign/Likely_benign|association", "Likely_benign/Benign|association"),
    # a term repeated (an older version's fold of P with P/LP) is the same set
    ("Pathogenic/Pathogenic/Likely_pathogenic", "Pathogenic/Likely_pathogenic"),
])
def test_the_same_terms_in_another_order_are_no_change(tmp_path, before, after):
    review = "criteria_provided,_single_submitter"
    key = ("7", 117559590, "ATCT", "A")
    store = Store(tmp_path / "store")
    add_snapshot(store, write(tmp_path / "a.vcf", [(key, before, review)], "2024-01-07"),
                 name="a")
    add_snapshot(store, write(tmp_path / "b.vcf", [(key, after, review)], "2024-06-02"),
                 name="b")
    assert changes(store, "a", "b") == {} == naive([(key, before, review)],
                                                    [(key, after, review)])
