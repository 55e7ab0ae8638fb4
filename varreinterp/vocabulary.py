"""The one vocabulary: every raw classification and review-status string, from every ClinVar era
and layout, maps through the explicit tables below to a normalized term, a tier and stars.

Traps handled here (see DOMAIN.md):
- the early-2024 renames (interpretations -> classifications, no_assertion_provided -> ...);
- secondary terms joined by ``,_`` (old) or ``|`` (new), while ``Pathogenic,_low_penetrance`` and
  ``criteria_provided,_single_submitter`` contain a literal comma;
- spaces (variant_summary) vs underscores (VCF), and case;
- pre-2017 numeric CLNSIG codes, where ``|`` separates per-submission assertions: read only for
  the files that use them (`classify(raw, codes=True)`), since in a lab's table "3" is as likely
  the 5-class scale's "uncertain" as ClinVar's old "likely benign";
- never substring matching: every token is looked up whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from varreinterp.errors import UnknownTermError


class Tier(StrEnum):
    PATHOGENIC = "pathogenic"
    UNCERTAIN = "uncertain"
    BENIGN = "benign"
    CONFLICTING = "conflicting"
    OTHER = "other"

    @property
    def rank(self) -> int | None:
        """Position on the benign < uncertain < pathogenic axis; None off the axis."""
        return _TIER_RANK.get(self)


_TIER_RANK = {Tier.BENIGN: 0, Tier.UNCERTAIN: 1, Tier.PATHOGENIC: 2}

# Display/sort order: what matters clinically first.
TIER_ORDER = [Tier.PATHOGENIC, Tier.CONFLICTING, Tier.UNCERTAIN, Tier.BENIGN, Tier.OTHER]


def tier_order_sql(column: str) -> str:
    """SQL: a tier's position in TIER_ORDER (unknown or NULL last)."""
    whens = " ".join(f"WHEN '{t.value}' THEN {i}" for i, t in enumerate(TIER_ORDER))
    return f"(CASE {column} {whens} ELSE {len(TIER_ORDER)} END)"


def tier_rank_sql(column: str) -> str:
    """SQL: `Tier.rank` (benign < uncertain < pathogenic); NULL off that axis."""
    whens = " ".join(f"WHEN '{t.value}' THEN {r}" for t, r in _TIER_RANK.items())
    return f"(CASE {column} {whens} END)"

# Atomic classification terms, keyed by their lower-case underscore form. The value is the
# canonical (current ClinVar VCF) spelling and its tier.
_ATOMS: dict[str, tuple[str, Tier]] = {}


def _atom(canonical: str, tier: Tier, *aliases: str) -> None:
    for key in (canonical, *aliases):
        _ATOMS[key.lower()] = (canonical, tier)


_atom("Pathogenic", Tier.PATHOGENIC)
_atom("Likely_pathogenic", Tier.PATHOGENIC)
_atom("Pathogenic,_low_penetrance", Tier.PATHOGENIC)
_atom("Likely_pathogenic,_low_penetrance", Tier.PATHOGENIC)
_atom("Uncertain_significance", Tier.UNCERTAIN, "VUS")
_atom("Likely_benign", Tier.BENIGN)
_atom("Benign", Tier.BENIGN)
_atom(
    "Conflicting_classifications_of_pathogenicity",
    Tier.CONFLICTING,
    "Conflicting_interpretations_of_pathogenicity",  # renamed early 2024
    "Conflicting_data_from_submitters",  # pre-2015 wording
)
_atom("not_provided", Tier.OTHER)
_atom("drug_response", Tier.OTHER)
_atom("histocompatibility", Tier.OTHER)
_atom("other", Tier.OTHER)
_atom("risk_factor", Tier.OTHER)
_atom("association", Tier.OTHER)
_atom("association_not_found", Tier.OTHER)
_atom("protective", Tier.OTHER)
_atom("Affects", Tier.OTHER)
_atom("confers_sensitivity", Tier.OTHER)
_atom("Established_risk_allele", Tier.OTHER)
_atom("Likely_risk_allele", Tier.OTHER)
_atom("Uncertain_risk_allele", Tier.OTHER)
_atom(
    "no_classification_for_the_single_variant",
    Tier.OTHER,
    "no_interpretation_for_the_single_variant",  # renamed early 2024
)
_atom("no_classifications_from_unflagged_records", Tier.OTHER)

# Pre-2017 ClinVar VCF codes (CLNSIG with CLNALLE), never aliases of the terms themselves.
_CODES = {code: _ATOMS[term.lower()] for code, term in (
    ("0", "Uncertain_significance"), ("1", "not_provided"), ("2", "Benign"),
    ("3", "Likely_benign"), ("4", "Likely_pathogenic"), ("5", "Pathogenic"),
    ("6", "drug_response"), ("7", "histocompatibility"), ("255", "other"))}

# Terms whose own text contains ",_": protected before splitting on the ",_" separator.
_COMMA_TERMS = sorted((k for k in _ATOMS if ",_" in k), key=len, reverse=True)
_SEPARATORS = re.compile(r"\|_?|;_?|,_|,")
_NUMERIC = re.compile(r"^\d+$")


@dataclass(frozen=True)
class Classification:
    """A normalized germline classification: canonical term and its tier."""

    term: str
    tier: Tier


class UnknownTerm(ValueError):
    pass


def _canon_text(raw: str) -> str:
    return "_".join(raw.strip().split())


def _split_components(text: str) -> list[str]:
    lowered = text.lower()
    for term in _COMMA_TERMS:
        lowered = lowered.replace(term, term.replace(",_", "\x00"))
    return [c.replace("\x00", ",_") for c in _SEPARATORS.split(lowered) if c]


def _aggregate_tier(parts: list[tuple[str, Tier]], raw: str) -> Tier:
    tiers = {t for _, t in parts}
    if Tier.CONFLICTING in tiers:
        if len(parts) > 1:
            raise UnknownTerm(raw)
        return Tier.CONFLICTING
    on_axis = {t for t in tiers if t.rank is not None}
    if len(on_axis) > 1:
        raise UnknownTerm(raw)  # e.g. "Benign/Pathogenic": not a ClinVar aggregate
    return on_axis.pop() if on_axis else Tier.OTHER


def _lookup(token: str, raw: str) -> tuple[str, Tier]:
    try:
        return _ATOMS[token]
    except KeyError:
        raise UnknownTerm(raw) from None


def _numeric_assertions(tokens: list[str], raw: str) -> Classification:
    """Pre-2017 numeric CLNSIG: '|' separates the assertions of several submissions."""
    try:
        atoms = [_CODES[t] for t in tokens]
    except KeyError:
        raise UnknownTerm(raw) from None
    on_axis = [a for a in atoms if a[1].rank is not None]
    off_axis = [a[0] for a in atoms if a[1].rank is None]
    secondary = list(dict.fromkeys(off_axis))
    if not on_axis:
        return Classification("|".join(secondary), Tier.OTHER)
    tiers = {t for _, t in on_axis}
    terms = list(dict.fromkeys(t for t, _ in on_axis))
    if len(tiers) > 1:
        primary, tier = "Conflicting_classifications_of_pathogenicity", Tier.CONFLICTING
    elif len(terms) == 1:
        primary, tier = terms[0], on_axis[0][1]
    else:
        primary = {
            Tier.PATHOGENIC: "Pathogenic/Likely_pathogenic",
            Tier.BENIGN: "Benign/Likely_benign",
        }.get(on_axis[0][1], terms[0])
        tier = on_axis[0][1]
    return Classification("|".join([primary, *secondary]), tier)


@lru_cache(maxsize=4096)
def classify(raw: str, codes: bool = False) -> Classification:
    """Normalize one raw classification string. Raises UnknownTerm for anything not in the table.
    With `codes` (a pre-2017 ClinVar VCF only), a string of numbers is read as CLNSIG codes;
    otherwise it is unknown.

    Shape: PRIMARY[/PRIMARY...][SEP SECONDARY...]; the tier comes from the primary. A secondary
    that is itself a pathogenicity term is not a ClinVar pattern and is refused as unknown.
    """
    text = _canon_text(raw)
    if not text or text == ".":
        raise UnknownTerm(raw)
    components = _split_components(text)
    if not components:
        raise UnknownTerm(raw)
    if codes and all(_NUMERIC.match(c) for c in components):
        return _numeric_assertions(components, raw)
    primary_parts = [_lookup(p, raw) for p in components[0].split("/")]
    tier = _aggregate_tier(primary_parts, raw)
    secondary = [_lookup(c, raw) for c in components[1:]]
    if any(t is not Tier.OTHER for _, t in secondary):
        raise UnknownTerm(raw)
    term = "/".join(p for p, _ in primary_parts)
    seen = list(dict.fromkeys(s for s, _ in secondary))
    return Classification("|".join([term, *seen]), tier)


# ---------------------------------------------------------------- review status -> stars
_REVIEW: dict[str, tuple[str, int]] = {}


def _review(canonical: str, stars: int, *aliases: str) -> None:
    for key in (canonical, *aliases):
        _REVIEW[_canon_text(key).lower()] = (canonical, stars)


_review("practice_guideline", 4, "guideline")
_review("reviewed_by_expert_panel", 3, "exp")
_review("criteria_provided,_multiple_submitters,_no_conflicts", 2, "mult")
_review("criteria_provided,_multiple_submitters", 2)  # somatic clinical impact axis
_review("criteria_provided,_single_submitter", 1, "single")
_review(
    "criteria_provided,_conflicting_classifications",
    1,
    "criteria_provided,_conflicting_interpretations",  # renamed early 2024
    "conf",
)
_review("no_assertion_criteria_provided", 0, "no_criteria")
_review("no_classification_provided", 0, "no_assertion_provided", "no_assertion")
_review(
    "no_classification_for_the_single_variant", 0, "no_interpretation_for_the_single_variant"
)
_review("no_classifications_from_unflagged_records", 0)
_review("flagged_submission", 0)


@dataclass(frozen=True)
class ReviewStatus:
    term: str
    stars: int


@lru_cache(maxsize=1024)
def review_status(raw: str) -> ReviewStatus:
    """Normalize a review status. Several '|'-separated statuses (pre-2017 per-submission lists)
    resolve to the best-reviewed one."""
    text = _canon_text(raw).lower()
    if not text or text == ".":
        raise UnknownTerm(raw)
    # ClinVar review statuses contain ",_" themselves, so only '|' separates several of them.
    found = []
    for token in text.split("|"):
        if token not in _REVIEW:
            raise UnknownTerm(raw)
        found.append(_REVIEW[token])
    term, stars = max(found, key=lambda ts: ts[1])
    return ReviewStatus(term, stars)


def check_term(raw: str, allow_unknown: bool, *, path: str, line: int | None, field: str) -> None:
    """Raise the user-facing error for an unknown term unless unknown terms are allowed."""
    if not allow_unknown:
        raise UnknownTermError(
            f"unknown {field} term {raw!r} (use --allow-unknown-terms to import it as tier "
            "'other', or map it in a --mapping file)",
            path=path,
            line=line,
        )


# ---------------------------------------------------------------- lists of submitter terms
_FOLDED = {frozenset({"Pathogenic", "Likely_pathogenic"}): "Pathogenic/Likely_pathogenic",
           frozenset({"Benign", "Likely_benign"}): "Benign/Likely_benign"}
_ATOM_ORDER = {canonical: i for i, (canonical, _) in enumerate(dict.fromkeys(_ATOMS.values()))}
_CONFLICTING = "Conflicting_classifications_of_pathogenicity"


def fold_term_list(raw: str) -> str | None:
    """A lab table's list of submitters' terms ('Benign|Likely_benign|Uncertain_significance'),
    folded the way ClinVar aggregates them, as a set: one term stays itself; P with LP gives
    Pathogenic/Likely_pathogenic and B with LB Benign/Likely_benign (other terms of one tier
    are joined with '/', as ClinVar joins P and LP); terms of different tiers give
    Conflicting. Terms off the pathogenicity axis (risk_factor, association...) stay
    secondary terms. None when `raw` is
    not such a list (fewer than two pathogenicity terms): the ordinary table decides."""
    text = _canon_text(raw)
    if "|" not in text:
        return None
    parts = [p for p in text.split("|") if p]
    try:
        found = [classify(p) for p in parts]
    except UnknownTerm:
        return None
    primary = [c for c in found if c.tier is not Tier.OTHER]
    if len(primary) < 2:
        return None
    tiers = {c.tier for c in primary}
    # A row may already hold a combined term (P/LP): folded by its atoms, or P with P/LP
    # would give 'Pathogenic/Pathogenic/Likely_pathogenic', a term ClinVar never writes
    terms = sorted({atom for c in primary for atom in c.term.split("/")},
                   key=lambda t: _ATOM_ORDER.get(t, len(_ATOMS)))
    if Tier.CONFLICTING in tiers or len(tiers) > 1:
        folded = _CONFLICTING
    elif len(terms) == 1:
        folded = terms[0]
    else:
        folded = _FOLDED.get(frozenset(terms), "/".join(terms))
    secondary = list(dict.fromkeys(c.term for c in found if c.tier is Tier.OTHER))
    return "|".join([folded, *secondary])
