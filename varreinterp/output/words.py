"""Plain words for what a person reads: classifications, review status, stars, zygosity, change
kinds, and one sentence saying why a change got its priority.

Pure functions over the normalized strings the store holds (``Likely_benign``,
``criteria_provided,_single_submitter``, ``het``, ``upgrade``...). Nothing here raises on an
unknown term: a person must always get something readable, so an unknown term falls back to its
own text with underscores as spaces (the vocabulary module is where unknown terms are refused).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from varreinterp.vocabulary import Tier

NOT_RECORDED = "not recorded"
UNKNOWN = "unknown"
ABSENT = "absent"

# ------------------------------------------------------------------ classifications

# Short forms for tables and timelines, keyed by the lower-case underscore spelling of one atom.
# Everything not here is spelled out (``drug_response`` -> "Drug response").
_ABBREVIATIONS: dict[str, str] = {
    "pathogenic": "P",
    "likely_pathogenic": "LP",
    "pathogenic,_low_penetrance": "P (low pen.)",
    "likely_pathogenic,_low_penetrance": "LP (low pen.)",
    "uncertain_significance": "VUS",
    "likely_benign": "LB",
    "benign": "B",
    "conflicting_classifications_of_pathogenicity": "Conflicting",
    "conflicting_interpretations_of_pathogenicity": "Conflicting",  # name before early 2024
    "conflicting_data_from_submitters": "Conflicting",  # pre-2015 wording
}

ABBREVIATION_LEGEND = (
    "P = pathogenic, LP = likely pathogenic, VUS = uncertain significance, "
    "LB = likely benign, B = benign, Conflicting = conflicting classifications of "
    "pathogenicity, low pen. = low penetrance"
)

_TIER_WORDS: dict[str, str] = {
    Tier.PATHOGENIC: "Pathogenic",
    Tier.UNCERTAIN: "Uncertain significance",
    Tier.BENIGN: "Benign",
    Tier.CONFLICTING: "Conflicting classifications",
    Tier.OTHER: "Other, not a pathogenicity class",
}


def _key(text: str) -> str:
    return "_".join(text.strip().split()).lower()


def _spaced(text: str) -> str:
    """Underscores as spaces, runs of white space collapsed."""
    return " ".join(text.replace("_", " ").split())


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def _split_secondary(term: str) -> tuple[str, list[str]]:
    """``Benign|association`` -> ("Benign", ["association"]). ClinVar joins secondary terms with
    '|'; a literal comma belongs to the term (``Pathogenic,_low_penetrance``), so never split it."""
    primary, *secondary = [p for p in term.strip().split("|") if p.strip()] or [""]
    return primary, secondary


def classification_words(term: str | None, missing: str = NOT_RECORDED) -> str:
    """A normalized classification in plain words: ``Pathogenic/Likely_pathogenic`` ->
    "Pathogenic/Likely pathogenic"; ``Benign|association`` -> "Benign; association"."""
    if term is None or not term.strip():
        return missing
    primary, secondary = _split_secondary(term)
    return "; ".join([_capitalized(_spaced(primary)), *(_spaced(s) for s in secondary)])


def classification_abbrev(term: str | None, missing: str = "-") -> str:
    """Short form for tables and timelines: P, LP, P/LP, VUS, LB, B, B/LB, Conflicting,
    "P (low pen.)"; other terms spelled out ("Drug response", "Risk factor", "Not provided")."""
    if term is None or not term.strip():
        return missing
    primary, secondary = _split_secondary(term)
    parts = [_ABBREVIATIONS.get(_key(p), _capitalized(_spaced(p))) for p in primary.split("/")]
    return "; ".join(["/".join(parts), *(_spaced(s) for s in secondary)])


def tier_words(tier: str | None) -> str:
    """A tier in words; None (absent from the snapshot) is "absent"."""
    if tier is None:
        return ABSENT
    return _TIER_WORDS.get(tier.lower(), _capitalized(_spaced(tier)))


# ------------------------------------------------------------------ review status and stars


def review_words(status: str | None, missing: str = NOT_RECORDED) -> str:
    """``criteria_provided,_multiple_submitters,_no_conflicts`` -> "criteria provided, multiple
    submitters, no conflicts"."""
    if status is None or not status.strip():
        return missing
    return "; ".join(_spaced(s) for s in status.split("|") if s.strip())


def _stars(value: int | None) -> int | None:
    """Stars as an int; a NaN (a missing value from a data frame) is unknown, not a crash."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else int(number)


def stars_text(stars: int | None) -> str:
    """ "2 stars", "1 star", "0 stars"; None is "stars unknown"."""
    stars = _stars(stars)
    if stars is None:
        return "stars unknown"
    return f"{stars} star" if stars == 1 else f"{stars} stars"


MAX_STARS = 4


def stars_glyphs(stars: int | None) -> str:
    """ "★★☆☆" for 2 of 4 stars; "" when unknown."""
    stars = _stars(stars)
    if stars is None:
        return ""
    filled = max(0, min(MAX_STARS, stars))
    return "★" * filled + "☆" * (MAX_STARS - filled)


# ------------------------------------------------------------------ zygosity, QC, conditions

_ZYGOSITY: dict[str, str] = {
    "het": "heterozygous",
    "hom": "homozygous",
    "hemi": "hemizygous",
    "unknown": "unknown zygosity",
}


def zygosity_words(zygosity: str | None) -> str:
    """het -> "heterozygous", hom -> "homozygous", hemi -> "hemizygous"."""
    if zygosity is None or not zygosity.strip():
        return "unknown zygosity"
    return _ZYGOSITY.get(zygosity.strip().lower(), _spaced(zygosity))


PASSING_FILTERS = frozenset({"PASS", "."})


def filter_failed(vcf_filter: str | None) -> bool:
    """True when the patient's call did not pass the caller's filters (FILTER not PASS or '.').
    Unknown (None) is not a failure: nothing says it failed."""
    if vcf_filter is None or not vcf_filter.strip():
        return False
    return vcf_filter.strip() not in PASSING_FILTERS


def filter_words(vcf_filter: str | None) -> str:
    """The FILTER column for people: "PASS", "no filters applied ('.')", or
    "FAILED QC: LowQual; q10"."""
    if vcf_filter is None or not vcf_filter.strip():
        return NOT_RECORDED
    text = vcf_filter.strip()
    if text == "PASS":
        return "PASS"
    if text == ".":
        return "no filters applied ('.')"
    return "FAILED QC: " + "; ".join(f for f in re.split(r"[;,]", text) if f)


def condition_list(conditions: str | None) -> list[str]:
    """CLNDN text (``Breast_cancer|not_provided``) as a list of names in plain words."""
    if conditions is None:
        return []
    return [_capitalized(_spaced(c)) for c in conditions.split("|") if c.strip() and c != "."]


_SO_ITEM = re.compile(r"SO:\d+\|([^,|]+)")


def consequence_words(consequence: str | None, missing: str = NOT_RECORDED) -> str:
    """ClinVar MC (``SO:0001583|missense_variant,SO:0001627|intron_variant``) as
    "missense variant, intron variant"; other text with underscores as spaces."""
    if consequence is None or not consequence.strip() or consequence.strip() == ".":
        return missing
    names = _SO_ITEM.findall(consequence)
    if not names:
        return _spaced(consequence)
    return ", ".join(dict.fromkeys(_spaced(n) for n in names))


_CONF_ITEM = re.compile(r"([^()|]+?)\((\d+)\)")


def conflict_breakdown(clnsigconf: str | None) -> list[tuple[str, int | None]]:
    """CLNSIGCONF as (term in words, number of submissions): ``Pathogenic(1)|Uncertain_
    significance(2)`` -> [("Pathogenic", 1), ("Uncertain significance", 2)]. The old ','
    separator is read too; text that is not in this shape comes back whole, count None."""
    if clnsigconf is None or not clnsigconf.strip():
        return []
    text = clnsigconf.strip()
    items: list[tuple[str, int | None]] = []
    end = 0
    for match in _CONF_ITEM.finditer(text):
        gap = text[end : match.start()].strip(" ,|_")
        if gap:  # something between items that is not an item: not the documented shape
            return [(_spaced(text), None)]
        term = match.group(1).strip(" ,_")
        items.append((classification_words(term), int(match.group(2))))
        end = match.end()
    if not items or text[end:].strip(" ,|_"):
        return [(_spaced(text), None)]
    return items


def submissions_text(count: int | None) -> str:
    if count is None:
        return ""
    return f"{count} submission" if count == 1 else f"{count} submissions"


# ------------------------------------------------------------------ change kinds and priority

_CHANGE_WORDS: dict[str, str] = {
    "upgrade": "Upgraded (moved towards pathogenic)",
    "downgrade": "Downgraded (moved away from pathogenic)",
    "conflict": "Submitters now disagree (conflict appeared)",
    "resolved": "Conflict between submitters resolved",
    "new": "Newly classified (absent from the earlier snapshot)",
    "gone": "No longer in the newer snapshot (absent is not the same as benign)",
    "reclassified": "Reclassified within the same tier",
    "review": "Review status changed (classification unchanged)",
    "newly_carried": "Newly carried by the patient",
    "no_longer_carried": "No longer carried by the patient",
}


def state_words(state: str | None) -> str:
    """A patient's reanalysis state (`cohort status`) in words: up_to_date -> "up to date",
    out_of_scope -> "out of scope"; waiting and failing stay as they are."""
    if state is None or not state.strip():
        return UNKNOWN
    return _spaced(state)


def change_words(change: str | None) -> str:
    """A change kind in words: upgrade -> "Upgraded (moved towards pathogenic)"."""
    if change is None or not change.strip():
        return "Change of unknown kind"
    return _CHANGE_WORDS.get(change.strip().lower(), _capitalized(_spaced(change)))


_PRIORITY_WORDS = {"high": "High", "medium": "Medium", "low": "Low"}


def priority_words(priority: str | None) -> str:
    if priority is None or not priority.strip():
        return "Unknown priority"
    return _PRIORITY_WORDS.get(priority.strip().lower(), _capitalized(_spaced(priority)))


def _is_path(tier: str | None) -> bool:
    return tier is not None and tier.lower() == Tier.PATHOGENIC


def expected_priority(change: str, tier_before: str | None, tier_after: str | None) -> str:
    """The priority rule (the SQL in diff.py is the source of truth; this mirrors it to explain
    it): crossing into or out of the pathogenic tier is high, another tier change medium, the
    rest low. A variant the patient newly carries is prioritized like a new one by its tier; one
    no longer carried is low."""
    kind = change.strip().lower()
    if kind == "newly_carried":
        return "high" if _is_path(tier_after) else "medium"
    if kind == "no_longer_carried":
        return "low"
    norm_b = tier_before.lower() if tier_before else None
    norm_a = tier_after.lower() if tier_after else None
    if _is_path(norm_b) != _is_path(norm_a):
        return "high"
    return "medium" if norm_b != norm_a else "low"


def _side(term: str | None, tier: str | None) -> str:
    if term is not None and term.strip():
        return classification_words(term)
    return tier_words(tier)


def _carried_reason(kind: str, level: str, frm: str, to: str, tier_after: str | None) -> str:
    if kind == "newly_carried":
        if _is_path(tier_after):
            return (f"{level}: the patient now carries this variant, classified in the "
                    f"pathogenic tier ({to}), which may make a diagnosis.")
        return (f"{level}: the patient now carries this variant, classified outside the "
                f"pathogenic tier ({to}).")
    return (f"{level}: the variant is no longer called in the patient's data ({frm} when last "
            "carried); its classification is not what changed.")


def _high_reason(level: str, frm: str, to: str, tier_before: str | None,
                 tier_after: str | None) -> str:
    if _is_path(tier_after):
        if tier_before is None:
            return (f"{level}: the variant is newly classified in the pathogenic tier "
                    f"({frm} -> {to}), which may make a diagnosis.")
        return (f"{level}: the classification moved into the pathogenic tier ({frm} -> {to}), "
                "which may make a diagnosis.")
    if tier_after is None:
        return (f"{level}: the variant is no longer in the newer snapshot ({frm} -> {to}), which "
                "may retract a diagnosis; absent is not the same as benign.")
    return (f"{level}: the classification moved out of the pathogenic tier ({frm} -> {to}), "
            "which may retract a diagnosis.")


def _medium_reason(level: str, frm: str, to: str, tier_before: str | None,
                   tier_after: str | None) -> str:
    if tier_before is None:
        return (f"{level}: the variant is newly classified ({frm} -> {to}), outside the "
                "pathogenic tier.")
    if tier_after is None:
        return (f"{level}: the variant is no longer in the newer snapshot ({frm} -> {to}); "
                "absent is not the same as benign.")
    if tier_after.lower() == Tier.CONFLICTING:
        return (f"{level}: submitters now disagree ({frm} -> {to}), outside the pathogenic "
                "tier.")
    if tier_before.lower() == Tier.CONFLICTING:
        return (f"{level}: a conflict between submitters was resolved ({frm} -> {to}), outside "
                "the pathogenic tier.")
    return (f"{level}: the classification changed tier ({frm} -> {to}) without entering or "
            "leaving the pathogenic tier.")


def _low_reason(kind: str, level: str, frm: str, to: str, tier_before: str | None,
                stars_before: int | None, stars_after: int | None) -> str:
    if kind == "review":
        if stars_before != stars_after:
            return (f"{level}: only the review changed ({stars_text(stars_before)} -> "
                    f"{stars_text(stars_after)}); the classification is the same ({to}).")
        return f"{level}: only the review status changed; the classification is the same ({to})."
    tier = f"{_spaced(tier_before)} " if tier_before else ""
    return (f"{level}: the classification changed within the same tier ({frm} -> {to}); it "
            f"stays in the {tier}tier.")


def priority_reason(change: str | None, priority: str | None, tier_before: str | None,
                    tier_after: str | None, stars_before: int | None, stars_after: int | None,
                    *, before: str | None = None, after: str | None = None) -> str:
    """One sentence saying why a change got its priority, e.g. "High: the classification moved
    out of the pathogenic tier (Pathogenic -> Uncertain significance), which may retract a
    diagnosis." With `before`/`after` (the classifications) the parenthesis names the classes,
    otherwise the tiers. A priority that does not follow the rules, or an unknown kind, gets a
    plain description instead of a reason that would be wrong."""
    level = priority_words(priority)
    frm, to = _side(before, tier_before), _side(after, tier_after)
    kind = (change or "").strip().lower()
    generic = f"{level}: {change_words(change)} ({frm} -> {to})."
    if kind not in _CHANGE_WORDS or (priority or "").strip().lower() != expected_priority(
        kind, tier_before, tier_after
    ):
        return generic
    if kind in ("newly_carried", "no_longer_carried"):
        return _carried_reason(kind, level, frm, to, tier_after)
    rank = (priority or "").strip().lower()
    if rank == "high":
        return _high_reason(level, frm, to, tier_before, tier_after)
    if rank == "medium":
        return _medium_reason(level, frm, to, tier_before, tier_after)
    return _low_reason(kind, level, frm, to, tier_before, stars_before, stars_after)


def join_words(items: Sequence[str], missing: str = NOT_RECORDED) -> str:
    """Items as one line for plain-text readers ("A; B"), or `missing`."""
    return "; ".join(items) if items else missing
