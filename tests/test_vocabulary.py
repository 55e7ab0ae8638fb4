"""The one vocabulary: one test per trap listed in DOMAIN.md, plus an idempotence property."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from varreinterp.vocabulary import (
    Classification,
    Tier,
    UnknownTerm,
    classify,
    review_status,
)

P, U, B, C, OTH = Tier.PATHOGENIC, Tier.UNCERTAIN, Tier.BENIGN, Tier.CONFLICTING, Tier.OTHER


# ----------------------------------------------------------------------- 2024 renames
def test_conflicting_rename_maps_to_the_same_term_and_tier():
    old = classify("Conflicting_interpretations_of_pathogenicity")
    new = classify("Conflicting_classifications_of_pathogenicity")
    assert old == new == Classification("Conflicting_classifications_of_pathogenicity", C)


@pytest.mark.parametrize(
    ("old", "new", "stars"),
    [
        ("no_assertion_provided", "no_classification_provided", 0),
        ("no_interpretation_for_the_single_variant",
         "no_classification_for_the_single_variant", 0),
        ("criteria_provided,_conflicting_interpretations",
         "criteria_provided,_conflicting_classifications", 1),
    ],
)
def test_review_status_renames_are_the_same_status(old, new, stars):
    assert review_status(old) == review_status(new)
    assert review_status(old).term == new
    assert review_status(old).stars == stars


def test_no_interpretation_for_the_single_variant_as_a_classification_is_renamed_too():
    assert classify("no_interpretation_for_the_single_variant") == classify(
        "no_classification_for_the_single_variant") == Classification(
        "no_classification_for_the_single_variant", OTH)


# ----------------------------------------------------------------------- separators
@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("Benign,_association", "Benign|association"),
        ("Pathogenic,_risk_factor", "Pathogenic|risk_factor"),
        ("Uncertain_significance,_drug_response", "Uncertain_significance|drug_response"),
        ("Benign,_Affects,_association", "Benign|Affects|association"),
    ],
)
def test_old_comma_and_new_bar_secondary_separators_read_the_same(old, new):
    assert classify(old) == classify(new)


def test_secondary_terms_keep_their_order_and_tier_comes_from_primary():
    assert classify("Benign|Affects|association") == Classification(
        "Benign|Affects|association", B)
    assert classify("Benign,_association") == Classification("Benign|association", B)


@pytest.mark.parametrize(
    ("summary_style", "vcf_style"),
    [
        # variant_summary.txt joins secondary terms with "; " (2024 layout and before).
        ("Pathogenic; risk factor", "Pathogenic|risk_factor"),
        ("Pathogenic/Likely pathogenic; risk factor", "Pathogenic/Likely_pathogenic|risk_factor"),
        ("Likely pathogenic; drug response", "Likely_pathogenic|drug_response"),
        ("Pathogenic; protective; risk factor", "Pathogenic|protective|risk_factor"),
    ],
)
def test_variant_summary_semicolon_space_separator(summary_style, vcf_style):
    assert classify(summary_style) == classify(vcf_style)


# ----------------------------------------------------------------------- literal commas
@pytest.mark.parametrize(
    "term", ["Pathogenic,_low_penetrance", "Likely_pathogenic,_low_penetrance"]
)
def test_low_penetrance_keeps_its_literal_comma_and_is_pathogenic(term):
    assert classify(term) == Classification(term, P)


def test_low_penetrance_with_a_secondary_term():
    assert classify("Pathogenic,_low_penetrance|risk_factor") == Classification(
        "Pathogenic,_low_penetrance|risk_factor", P)
    assert classify("Likely pathogenic, low penetrance") == Classification(
        "Likely_pathogenic,_low_penetrance", P)


def test_review_status_with_literal_commas_is_not_split():
    assert review_status("criteria_provided,_single_submitter").stars == 1
    assert review_status("criteria_provided,_multiple_submitters,_no_conflicts").stars == 2


# ----------------------------------------------------------------------- no substring matching
@pytest.mark.parametrize(
    "raw",
    [
        "Conflicting classifications of pathogenicity",
        "Conflicting interpretations of pathogenicity",
        "Conflicting_classifications_of_pathogenicity",
    ],
)
def test_conflicting_is_not_pathogenic(raw):
    got = classify(raw)
    assert got.tier is C
    assert got.term == "Conflicting_classifications_of_pathogenicity"


@pytest.mark.parametrize("raw", ["Pathogenicish", "Non-pathogenic", "pathogenic_variant",
                                 "Benignity", "Likely"])
def test_words_containing_a_known_term_are_unknown(raw):
    with pytest.raises(UnknownTerm):
        classify(raw)


# ----------------------------------------------------------------------- aggregates
def test_aggregate_pathogenic_likely_pathogenic():
    assert classify("Pathogenic/Likely_pathogenic") == Classification(
        "Pathogenic/Likely_pathogenic", P)
    assert classify("Pathogenic/Likely pathogenic") == classify("Pathogenic/Likely_pathogenic")


def test_aggregate_benign_likely_benign():
    assert classify("Benign/Likely_benign") == Classification("Benign/Likely_benign", B)
    assert classify("Benign/Likely benign") == classify("Benign/Likely_benign")


# ----------------------------------------------------------------------- tier other
@pytest.mark.parametrize(
    "term",
    ["Established_risk_allele", "Likely_risk_allele", "Uncertain_risk_allele", "drug_response",
     "risk_factor", "association", "protective", "Affects", "other", "not_provided",
     "association_not_found", "confers_sensitivity", "histocompatibility"],
)
def test_risk_and_non_pathogenicity_terms_are_tier_other(term):
    assert classify(term) == Classification(term, OTH)


# ----------------------------------------------------------------------- spaces and case
@pytest.mark.parametrize(
    ("spaced", "underscored", "tier"),
    [
        ("Likely pathogenic", "Likely_pathogenic", P),
        ("Uncertain significance", "Uncertain_significance", U),
        ("Likely benign", "Likely_benign", B),
        ("drug response", "drug_response", OTH),
        ("Established risk allele", "Established_risk_allele", OTH),
    ],
)
def test_spaces_equal_underscores(spaced, underscored, tier):
    assert classify(spaced) == classify(underscored) == Classification(underscored, tier)


@pytest.mark.parametrize(
    ("spaced", "underscored"),
    [
        ("criteria provided, single submitter", "criteria_provided,_single_submitter"),
        ("criteria provided, multiple submitters, no conflicts",
         "criteria_provided,_multiple_submitters,_no_conflicts"),
        ("reviewed by expert panel", "reviewed_by_expert_panel"),
        ("no assertion criteria provided", "no_assertion_criteria_provided"),
        ("criteria provided, conflicting interpretations",
         "criteria_provided,_conflicting_classifications"),
    ],
)
def test_review_status_spaces_equal_underscores(spaced, underscored):
    assert review_status(spaced) == review_status(underscored)


@pytest.mark.parametrize("raw", ["PATHOGENIC", "pathogenic", "PaThOgEnIc", " Pathogenic "])
def test_classification_case_insensitive(raw):
    assert classify(raw) == Classification("Pathogenic", P)


def test_review_status_case_insensitive():
    assert review_status("Criteria_Provided,_Single_Submitter") == review_status(
        "criteria_provided,_single_submitter")
    assert review_status("PRACTICE GUIDELINE").stars == 4


# ----------------------------------------------------------------------- pre-2017 numeric codes
@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("0", Classification("Uncertain_significance", U)),
        ("1", Classification("not_provided", OTH)),
        ("2", Classification("Benign", B)),
        ("3", Classification("Likely_benign", B)),
        ("4", Classification("Likely_pathogenic", P)),
        ("5", Classification("Pathogenic", P)),
        ("6", Classification("drug_response", OTH)),
        ("7", Classification("histocompatibility", OTH)),
        ("255", Classification("other", OTH)),
    ],
)
def test_numeric_codes(code, expected):
    assert classify(code, codes=True) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2|255|2", Classification("Benign|other", B)),
        ("4|5", Classification("Pathogenic/Likely_pathogenic", P)),
        ("5|4", Classification("Pathogenic/Likely_pathogenic", P)),
        ("2|3", Classification("Benign/Likely_benign", B)),
        ("2|5", Classification("Conflicting_classifications_of_pathogenicity", C)),
        ("0|3", Classification("Conflicting_classifications_of_pathogenicity", C)),
        ("5|5", Classification("Pathogenic", P)),
        ("1|6", Classification("not_provided|drug_response", OTH)),
    ],
)
def test_numeric_multi_submission_lists(raw, expected):
    assert classify(raw, codes=True) == expected


def test_unknown_numeric_code_is_unknown():
    with pytest.raises(UnknownTerm):
        classify("8", codes=True)
    with pytest.raises(UnknownTerm):
        classify("2|9", codes=True)


@pytest.mark.parametrize("raw", ["1", "2", "3", "4", "5", "0", "255", "3|5", "5 "])
def test_numbers_are_unknown_outside_pre_2017_files(raw):
    # A lab's 5-class scale reads "3" as uncertain where ClinVar's old code meant likely
    # benign: a number is never a term unless the file is one that uses the codes.
    with pytest.raises(UnknownTerm):
        classify(raw)


# ----------------------------------------------------------------------- review stars
@pytest.mark.parametrize(
    ("raw", "stars"),
    [
        ("practice_guideline", 4),
        ("reviewed_by_expert_panel", 3),
        ("criteria_provided,_multiple_submitters,_no_conflicts", 2),
        ("criteria_provided,_single_submitter", 1),
        ("criteria_provided,_conflicting_classifications", 1),
        ("criteria_provided,_conflicting_interpretations", 1),
        ("no_assertion_criteria_provided", 0),
        ("no_classification_provided", 0),
        ("no_assertion_provided", 0),
        ("no_classification_for_the_single_variant", 0),
        ("no_interpretation_for_the_single_variant", 0),
        ("no_classifications_from_unflagged_records", 0),
        ("flagged_submission", 0),
        # pre-2017 short codes
        ("guideline", 4),
        ("exp", 3),
        ("mult", 2),
        ("single", 1),
        ("conf", 1),
        ("no_criteria", 0),
        ("no_assertion", 0),
    ],
)
def test_review_status_stars(raw, stars):
    assert review_status(raw).stars == stars


def test_short_codes_normalize_to_the_long_terms():
    assert review_status("guideline").term == "practice_guideline"
    assert review_status("exp").term == "reviewed_by_expert_panel"
    assert review_status("mult").term == "criteria_provided,_multiple_submitters,_no_conflicts"
    assert review_status("single").term == "criteria_provided,_single_submitter"
    assert review_status("conf").term == "criteria_provided,_conflicting_classifications"
    assert review_status("no_criteria").term == "no_assertion_criteria_provided"
    assert review_status("no_assertion").term == "no_classification_provided"


def test_per_submission_review_list_takes_the_best_reviewed():
    assert review_status("mult|conf|single").stars == 2
    assert review_status("single|exp").term == "reviewed_by_expert_panel"


# ----------------------------------------------------------------------- unknown terms
@pytest.mark.parametrize(
    "raw",
    ["Pathogenicish", "Benign/Pathogenic", "Benign|Uncertain_significance",
     "Likely_benign/Likely_pathogenic", "Conflicting_classifications_of_pathogenicity/Benign",
     "", ".", "   ", "Benign|not_a_term"],
)
def test_unknown_classifications_raise(raw):
    with pytest.raises(UnknownTerm):
        classify(raw)


@pytest.mark.parametrize("raw", ["", ".", "two_stars", "criteria_provided", "single|bogus"])
def test_unknown_review_statuses_raise(raw):
    with pytest.raises(UnknownTerm):
        review_status(raw)


# ----------------------------------------------------------------------- property: idempotence
_PRIMARY = ["Pathogenic", "Likely_pathogenic", "Pathogenic,_low_penetrance",
            "Likely_pathogenic,_low_penetrance", "Uncertain_significance", "Likely_benign",
            "Benign", "Conflicting_classifications_of_pathogenicity",
            "Conflicting_interpretations_of_pathogenicity", "VUS"]
_OTHER = ["not_provided", "drug_response", "histocompatibility", "other", "risk_factor",
          "association", "association_not_found", "protective", "Affects",
          "confers_sensitivity", "Established_risk_allele", "Likely_risk_allele",
          "Uncertain_risk_allele", "no_classification_for_the_single_variant",
          "no_interpretation_for_the_single_variant",
          "no_classifications_from_unflagged_records"]
_CODES = ["0", "1", "2", "3", "4", "5", "6", "7", "255"]


def _spell(term: str, draw_case: int, spaces: bool) -> str:
    text = term.replace("_", " ") if spaces else term
    return [text, text.lower(), text.upper()][draw_case]


@st.composite
def raw_classifications(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return "|".join(draw(st.lists(st.sampled_from(_CODES), min_size=1, max_size=4)))
    primaries = draw(st.lists(st.sampled_from(_PRIMARY + _OTHER), min_size=1, max_size=2))
    secondary = draw(st.lists(st.sampled_from(_OTHER), max_size=3))
    sep = draw(st.sampled_from(["|", ",_"]))
    case = draw(st.integers(0, 2))
    spaces = draw(st.booleans())
    text = "/".join(primaries)
    if secondary:
        text += sep + sep.join(secondary)
    return _spell(text, case, spaces)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_classifications())
def test_classify_is_idempotent_on_its_own_output(raw):
    try:
        first = classify(raw, codes=raw.replace("|", "").isdigit())
    except UnknownTerm:
        return  # e.g. Benign/Pathogenic: refusing is the right answer, nothing to re-read
    again = classify(first.term)
    assert again == first
    assert isinstance(first.tier, Tier)
