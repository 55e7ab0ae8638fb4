"""Plain words for people: classifications, review status, stars, zygosity, change kinds and the
priority sentence, checked against the documented wording and against the diff's own rules."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from naive_changes import naive_change

from varreinterp.changes import carried_priority_sql, priority_sql
from varreinterp.output import words


@pytest.mark.parametrize(("term", "expected"), [
    ("Likely_benign", "Likely benign"),
    ("Pathogenic/Likely_pathogenic", "Pathogenic/Likely pathogenic"),
    ("Pathogenic,_low_penetrance", "Pathogenic, low penetrance"),
    ("Conflicting_classifications_of_pathogenicity",
     "Conflicting classifications of pathogenicity"),
    ("Benign|association", "Benign; association"),
    ("Pathogenic|drug_response|risk_factor", "Pathogenic; drug response; risk factor"),
    ("not_provided", "Not provided"),
    ("Uncertain significance", "Uncertain significance"),  # variant_summary spelling
    ("Brand_new_term_2030", "Brand new term 2030"),  # unknown: underscores as spaces
])
def test_classification_words(term: str, expected: str) -> None:
    assert words.classification_words(term) == expected


def test_missing_classification_is_not_recorded_or_the_given_text() -> None:
    assert words.classification_words(None) == "not recorded"
    assert words.classification_words("  ") == "not recorded"
    assert words.classification_words(None, missing="absent") == "absent"


@pytest.mark.parametrize(("term", "expected"), [
    ("Pathogenic", "P"),
    ("Likely_pathogenic", "LP"),
    ("Pathogenic/Likely_pathogenic", "P/LP"),
    ("Uncertain_significance", "VUS"),
    ("Likely_benign", "LB"),
    ("Benign", "B"),
    ("Benign/Likely_benign", "B/LB"),
    ("Conflicting_classifications_of_pathogenicity", "Conflicting"),
    ("Conflicting_interpretations_of_pathogenicity", "Conflicting"),  # pre-2024 name
    ("Pathogenic,_low_penetrance", "P (low pen.)"),
    ("Likely_pathogenic,_low_penetrance", "LP (low pen.)"),
    ("drug_response", "Drug response"),
    ("risk_factor", "Risk factor"),
    ("not_provided", "Not provided"),
    ("Benign|association", "B; association"),
    ("likely pathogenic", "LP"),  # spaces and case as variant_summary writes them
    ("Something_else", "Something else"),
])
def test_classification_abbrev(term: str, expected: str) -> None:
    assert words.classification_abbrev(term) == expected


def test_legend_explains_every_abbreviation_in_one_line() -> None:
    legend = words.ABBREVIATION_LEGEND
    assert "\n" not in legend
    for short in ("P =", "LP =", "VUS =", "LB =", "B =", "Conflicting =", "low pen. ="):
        assert short in legend


@pytest.mark.parametrize(("status", "expected"), [
    ("criteria_provided,_multiple_submitters,_no_conflicts",
     "criteria provided, multiple submitters, no conflicts"),
    ("reviewed_by_expert_panel", "reviewed by expert panel"),
    ("criteria_provided,_single_submitter", "criteria provided, single submitter"),
    (None, "not recorded"),
])
def test_review_words(status: str | None, expected: str) -> None:
    assert words.review_words(status) == expected


@pytest.mark.parametrize(("stars", "text", "glyphs"), [
    (0, "0 stars", "☆☆☆☆"),
    (1, "1 star", "★☆☆☆"),
    (2, "2 stars", "★★☆☆"),
    (4, "4 stars", "★★★★"),
    (None, "stars unknown", ""),
    (9, "9 stars", "★★★★"),  # out of range does not crash or overflow the four glyphs
    (float("nan"), "stars unknown", ""),  # a data frame's missing value
])
def test_stars(stars: int | float | None, text: str, glyphs: str) -> None:
    assert words.stars_text(stars) == text  # type: ignore[arg-type]
    assert words.stars_glyphs(stars) == glyphs  # type: ignore[arg-type]


@pytest.mark.parametrize(("code", "expected"), [
    ("het", "heterozygous"), ("hom", "homozygous"), ("hemi", "hemizygous"),
    ("unknown", "unknown zygosity"), (None, "unknown zygosity"), ("HET", "heterozygous"),
    ("mosaic_low", "mosaic low"),
])
def test_zygosity_words(code: str | None, expected: str) -> None:
    assert words.zygosity_words(code) == expected


def test_every_change_kind_has_its_own_words() -> None:
    kinds = ["upgrade", "downgrade", "conflict", "resolved", "new", "gone", "reclassified",
             "review", "newly_carried", "no_longer_carried"]
    texts = [words.change_words(k) for k in kinds]
    assert len(set(texts)) == len(kinds)
    assert all("_" not in t for t in texts)
    assert "benign" in words.change_words("gone")  # absent is said not to be benign
    assert words.change_words("some_future_kind") == "Some future kind"


@pytest.mark.parametrize(("value", "failed", "text"), [
    ("PASS", False, "PASS"),
    (".", False, "no filters applied ('.')"),
    (None, False, "not recorded"),
    ("LowQual", True, "FAILED QC: LowQual"),
    ("LowQual;q10", True, "FAILED QC: LowQual; q10"),
])
def test_filter_status(value: str | None, failed: bool, text: str) -> None:
    assert words.filter_failed(value) is failed
    assert words.filter_words(value) == text


@pytest.mark.parametrize(("text", "expected"), [
    ("Pathogenic(1)|Uncertain_significance(2)",
     [("Pathogenic", 1), ("Uncertain significance", 2)]),
    ("Pathogenic(1),Uncertain_significance(2)",  # the old separator
     [("Pathogenic", 1), ("Uncertain significance", 2)]),
    ("Pathogenic,_low_penetrance(1)|Benign(3)",  # a comma inside a term is not a separator
     [("Pathogenic, low penetrance", 1), ("Benign", 3)]),
    ("garbled_text", [("garbled text", None)]),
    ("Pathogenic(1)|junk", [("Pathogenic(1)|junk", None)]),
    (None, []),
])
def test_conflict_breakdown(text: str | None, expected: list[tuple[str, int | None]]) -> None:
    assert words.conflict_breakdown(text) == expected


def test_consequence_and_conditions() -> None:
    mc = "SO:0001583|missense_variant,SO:0001627|intron_variant,SO:0001583|missense_variant"
    assert words.consequence_words(mc) == "missense variant, intron variant"
    assert words.consequence_words(None) == "not recorded"
    assert words.condition_list("Breast_cancer|not_provided") == ["Breast cancer", "Not provided"]
    assert words.condition_list(None) == []


# ------------------------------------------------------------------ priority_reason


def test_priority_reason_documented_example() -> None:
    assert words.priority_reason("downgrade", "high", "pathogenic", "uncertain", 2, 2) == (
        "High: the classification moved out of the pathogenic tier "
        "(Pathogenic -> Uncertain significance), which may retract a diagnosis.")


@pytest.mark.parametrize(("args", "expected"), [
    (("upgrade", "high", "uncertain", "pathogenic", 1, 1),
     "High: the classification moved into the pathogenic tier (Uncertain significance -> "
     "Pathogenic), which may make a diagnosis."),
    (("new", "high", None, "pathogenic", None, 1),
     "High: the variant is newly classified in the pathogenic tier (absent -> Pathogenic), "
     "which may make a diagnosis."),
    (("gone", "high", "pathogenic", None, 1, None),
     "High: the variant is no longer in the newer snapshot (Pathogenic -> absent), which may "
     "retract a diagnosis; absent is not the same as benign."),
    (("conflict", "medium", "benign", "conflicting", 2, 1),
     "Medium: submitters now disagree (Benign -> Conflicting classifications), outside the "
     "pathogenic tier."),
    (("resolved", "medium", "conflicting", "uncertain", 1, 2),
     "Medium: a conflict between submitters was resolved (Conflicting classifications -> "
     "Uncertain significance), outside the pathogenic tier."),
    (("upgrade", "medium", "benign", "uncertain", 1, 1),
     "Medium: the classification changed tier (Benign -> Uncertain significance) without "
     "entering or leaving the pathogenic tier."),
    (("review", "low", "uncertain", "uncertain", 1, 3),
     "Low: only the review changed (1 star -> 3 stars); the classification is the same "
     "(Uncertain significance)."),
    (("reclassified", "low", "pathogenic", "pathogenic", 2, 2),
     "Low: the classification changed within the same tier (Pathogenic -> Pathogenic); it "
     "stays in the pathogenic tier."),
    (("newly_carried", "high", None, "pathogenic", None, 2),
     "High: the patient now carries this variant, classified in the pathogenic tier "
     "(Pathogenic), which may make a diagnosis."),
    (("newly_carried", "medium", None, "uncertain", None, 1),
     "Medium: the patient now carries this variant, classified outside the pathogenic tier "
     "(Uncertain significance)."),
])
def test_priority_reason_sentences(args: tuple[str, str, str | None, str | None, int | None,
                                               int | None], expected: str) -> None:
    assert words.priority_reason(*args) == expected


def test_priority_reason_names_the_classes_when_given() -> None:
    text = words.priority_reason("reclassified", "low", "pathogenic", "pathogenic", 2, 2,
                                 before="Likely_pathogenic", after="Pathogenic")
    assert "(Likely pathogenic -> Pathogenic)" in text
    assert text.startswith("Low: ")


def test_no_longer_carried_is_low_and_says_so() -> None:
    text = words.priority_reason("no_longer_carried", "low", "pathogenic", "pathogenic", 2, 2)
    assert text.startswith("Low: the variant is no longer called in the patient's data")
    assert words.expected_priority("no_longer_carried", "pathogenic", "pathogenic") == "low"


def test_a_priority_against_the_rules_gets_a_plain_description_not_a_wrong_reason() -> None:
    # a "high" review-only change would be explained as crossing a tier: it must not be
    text = words.priority_reason("review", "high", "uncertain", "uncertain", 1, 3)
    assert text == ("High: Review status changed (classification unchanged) "
                    "(Uncertain significance -> Uncertain significance).")


_TIERS = [None, "pathogenic", "uncertain", "benign", "conflicting", "other"]


@pytest.mark.parametrize(("tier_a", "tier_b"), list(itertools.product(_TIERS, _TIERS)))
def test_expected_priority_agrees_with_the_diff_reference(tier_a: str | None,
                                                          tier_b: str | None) -> None:
    """Every (kind, priority) the diff's reference rule produces gets a specific reason."""
    before = (f"cls_{tier_a}", tier_a, 1, "r") if tier_a else None
    for after_cls, after_stars in ((f"cls_{tier_b}", 1), ("cls_other_term", 1), (None, 2)):
        if tier_b is None and after_cls is not None:
            continue
        after = (after_cls or f"cls_{tier_b}", tier_b, after_stars, "r") if tier_b else None
        result = naive_change(before, after)
        if result is None:
            continue
        kind, priority = result
        assert words.expected_priority(kind, tier_a, tier_b) == priority.value
        text = words.priority_reason(kind, priority, tier_a, tier_b, 1, after_stars)
        assert text.startswith(words.priority_words(priority) + ": ")
        assert words.change_words(kind) not in text  # the specific sentence, not the fallback


@pytest.mark.parametrize(("tier_a", "tier_b"), list(itertools.product(_TIERS, _TIERS)))
def test_expected_priority_is_the_sql_rule(tier_a: str | None, tier_b: str | None) -> None:
    """The SQL in varreinterp.changes is the source of truth; the sentences must follow it."""
    import duckdb

    con = duckdb.connect()
    try:
        row = con.execute(
            f"SELECT {priority_sql()}, {carried_priority_sql('b_tier')} "
            "FROM (SELECT ?::VARCHAR AS a_tier, ?::VARCHAR AS b_tier)", [tier_a, tier_b],
        ).fetchone()
    finally:
        con.close()
    assert row is not None
    assert words.expected_priority("upgrade", tier_a, tier_b) == row[0]
    if tier_b is not None:  # a newly carried allele is always classified
        assert words.expected_priority("newly_carried", None, tier_b) == row[1]


_text = st.one_of(st.none(), st.text(max_size=40))
_stars = st.one_of(st.none(), st.integers(-3, 12))


@settings(max_examples=200, deadline=None)
@given(_text, _text, _text, _text, _stars, _stars, _text, _text)
def test_unknown_input_never_crashes(change: str | None, priority: str | None,
                                     tier_a: str | None, tier_b: str | None, sa: int | None,
                                     sb: int | None, before: str | None,
                                     after: str | None) -> None:
    text = words.priority_reason(change, priority, tier_a, tier_b, sa, sb,
                                 before=before, after=after)
    assert text.endswith(".")
    for fn in (words.classification_words, words.classification_abbrev, words.review_words,
               words.zygosity_words, words.change_words, words.tier_words,
               words.consequence_words, words.filter_words, words.priority_words):
        assert isinstance(fn(before), str)
    assert isinstance(words.conflict_breakdown(after), list)
    assert isinstance(words.condition_list(after), list)


def test_importing_words_stays_cheap() -> None:
    code = ("import sys, varreinterp.output.words, varreinterp.output.html_report; "
            "heavy = {'jinja2', 'pandas', 'duckdb', 'httpx', 'playwright', 'markupsafe'}; "
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
