"""The change rules in plain Python, one variant at a time: an independent reference for the SQL
in varreinterp/changes.py, used only by tests."""

from __future__ import annotations

from varreinterp.changes import ChangeKind, Priority

MIRROR = {ChangeKind.UPGRADE: ChangeKind.DOWNGRADE, ChangeKind.DOWNGRADE: ChangeKind.UPGRADE,
          ChangeKind.NEW: ChangeKind.GONE, ChangeKind.GONE: ChangeKind.NEW,
          ChangeKind.CONFLICT: ChangeKind.RESOLVED, ChangeKind.RESOLVED: ChangeKind.CONFLICT,
          ChangeKind.RECLASSIFIED: ChangeKind.RECLASSIFIED, ChangeKind.REVIEW: ChangeKind.REVIEW}


def _terms(classification: str) -> tuple[frozenset[str], frozenset[str]]:
    """A classification as sets of terms: 'Likely_pathogenic/Pathogenic|other|risk_factor'
    is 'Pathogenic/Likely_pathogenic|risk_factor|other'."""
    primary, *secondary = classification.split("|")
    return frozenset(primary.split("/")), frozenset(secondary)


def naive_change(before: tuple[str, str, int | None, str | None] | None,
                 after: tuple[str, str, int | None, str | None] | None
                 ) -> tuple[ChangeKind, Priority] | None:
    """before/after = (classification, tier, stars, review_status) or None when absent."""
    if before is None and after is None:
        return None
    a_tier = before[1] if before else None
    b_tier = after[1] if after else None
    if before is None:
        kind = ChangeKind.NEW
    elif after is None:
        kind = ChangeKind.GONE
    elif _terms(before[0]) != _terms(after[0]):
        rank = {"benign": 0, "uncertain": 1, "pathogenic": 2}
        if a_tier == b_tier:
            kind = ChangeKind.RECLASSIFIED
        elif b_tier == "conflicting":
            kind = ChangeKind.CONFLICT
        elif a_tier == "conflicting":
            kind = ChangeKind.RESOLVED
        elif b_tier == "pathogenic":
            kind = ChangeKind.UPGRADE
        elif a_tier == "pathogenic":
            kind = ChangeKind.DOWNGRADE
        elif a_tier in rank and b_tier in rank:
            kind = ChangeKind.UPGRADE if rank[b_tier] > rank[a_tier] else ChangeKind.DOWNGRADE
        else:
            kind = ChangeKind.RECLASSIFIED
    elif before[2:] != after[2:]:
        kind = ChangeKind.REVIEW
    else:
        return None
    if (a_tier == "pathogenic") != (b_tier == "pathogenic"):
        priority = Priority.HIGH
    elif a_tier != b_tier:
        priority = Priority.MEDIUM
    else:
        priority = Priority.LOW
    return kind, priority
