"""What a change is: the kinds, the priorities, and the rules that assign them, written once in
SQL and shared by `snapshot diff`, `diff`, `report` and the nightly `reanalyze`.

Changes compare normalized terms only, so ClinVar's renames and separator drift are not
changes. Every literal in the SQL below comes from the enums (ChangeKind, Priority, Tier); the
tests hold an independent plain-Python version of the same rules (tests/naive_changes.py)."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from varreinterp import db
from varreinterp.vocabulary import Tier, tier_rank_sql

if TYPE_CHECKING:
    import duckdb

    from varreinterp.store import Snapshot


class ChangeKind(StrEnum):
    UPGRADE = "upgrade"
    DOWNGRADE = "downgrade"
    CONFLICT = "conflict"
    RESOLVED = "resolved"
    NEW = "new"
    GONE = "gone"
    RECLASSIFIED = "reclassified"
    REVIEW = "review"
    # The patient's own calls changed (a replaced VCF), not the classification.
    NEWLY_CARRIED = "newly_carried"
    NO_LONGER_CARRIED = "no_longer_carried"


class Priority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return list(Priority).index(self)


# Most urgent first.
PRIORITY_ORDER = sorted(Priority, key=lambda p: -p.rank)


def _lit(value: StrEnum) -> str:
    return f"'{value.value}'"


def change_sql(a: str = "a", b: str = "b") -> str:
    """SQL: the change kind between `{a}_cls/_tier/_stars/_rev` and `{b}_...` (NULL: none).

    A tier crossing toward pathogenic on the benign < uncertain < pathogenic axis is an
    upgrade, away from it a downgrade; into or out of conflicting is conflict/resolved; any
    other class change (within a tier, or between `other` and the axis) is reclassified."""
    ar, br = tier_rank_sql(f"{a}_tier"), tier_rank_sql(f"{b}_tier")
    k = ChangeKind
    path, conf = _lit(Tier.PATHOGENIC), _lit(Tier.CONFLICTING)
    return f"""(CASE
        WHEN {a}_cls IS NULL AND {b}_cls IS NULL THEN NULL
        WHEN {a}_cls IS NULL THEN {_lit(k.NEW)}
        WHEN {b}_cls IS NULL THEN {_lit(k.GONE)}
        WHEN {a}_cls <> {b}_cls AND NOT {same_terms_sql(a, b)} THEN CASE
            WHEN {a}_tier = {b}_tier THEN {_lit(k.RECLASSIFIED)}
            WHEN {b}_tier = {conf} THEN {_lit(k.CONFLICT)}
            WHEN {a}_tier = {conf} THEN {_lit(k.RESOLVED)}
            WHEN {b}_tier = {path} THEN {_lit(k.UPGRADE)}
            WHEN {a}_tier = {path} THEN {_lit(k.DOWNGRADE)}
            WHEN {ar} IS NOT NULL AND {br} IS NOT NULL AND {br} > {ar} THEN {_lit(k.UPGRADE)}
            WHEN {ar} IS NOT NULL AND {br} IS NOT NULL THEN {_lit(k.DOWNGRADE)}
            ELSE {_lit(k.RECLASSIFIED)} END
        WHEN {a}_stars IS DISTINCT FROM {b}_stars OR {a}_rev IS DISTINCT FROM {b}_rev
            THEN {_lit(k.REVIEW)}
        END)"""


def class_key_sql(column: str) -> str:
    """SQL: a classification as a set of terms: its distinct primary terms ('/') and secondary
    terms ('|') each in sorted order. Tables list them in any order ('Likely_pathogenic/Pathogenic',
    '|risk_factor|other'): the same terms in another order are not a change."""
    return (f"(array_to_string(list_sort(list_distinct(string_split(split_part({column}, '|', 1),"
            f" '/'))), '/')"
            f" || '|' || array_to_string(list_sort(list_distinct(string_split({column}, '|')"
            f"[2:])), '|'))")


def same_terms_sql(a: str = "a", b: str = "b") -> str:
    """SQL: whether two different class strings are one set of terms. Only strings that both
    list several terms can be (the list functions cost 0.7 s over a 3M-row diff otherwise)."""
    several = [f"(contains({c}_cls, '/') OR contains({c}_cls, '|'))" for c in (a, b)]
    return (f"(CASE WHEN {several[0]} AND {several[1]} "
            f"THEN {class_key_sql(f'{a}_cls')} = {class_key_sql(f'{b}_cls')} ELSE false END)")


def priority_sql(a: str = "a", b: str = "b") -> str:
    """SQL: high when the tier crosses into or out of pathogenic, medium for any other tier
    change, low otherwise (a reclassification within a tier, a review change)."""
    path = _lit(Tier.PATHOGENIC)
    return f"""(CASE
        WHEN (coalesce({a}_tier, '') = {path}) <> (coalesce({b}_tier, '') = {path})
            THEN {_lit(Priority.HIGH)}
        WHEN coalesce({a}_tier, '') <> coalesce({b}_tier, '') THEN {_lit(Priority.MEDIUM)}
        ELSE {_lit(Priority.LOW)} END)"""


def carried_priority_sql(tier: str) -> str:
    """SQL: the priority of a newly carried allele, by its tier as for `new` (absent ->
    tier): pathogenic is high, any other classification medium."""
    return (f"(CASE WHEN {tier} = {_lit(Tier.PATHOGENIC)} THEN {_lit(Priority.HIGH)} "
            f"ELSE {_lit(Priority.MEDIUM)} END)")


def priority_filter_sql(min_priority: Priority, column: str = "priority") -> str:
    allowed = [p for p in Priority if p.rank >= min_priority.rank]
    return f"{column} IN (" + ", ".join(_lit(p) for p in allowed) + ")"


def priority_order_sql(column: str = "priority") -> str:
    """SQL sort key: most urgent first."""
    whens = " ".join(f"WHEN {_lit(p)} THEN {i}" for i, p in enumerate(PRIORITY_ORDER))
    return f"(CASE {column} {whens} ELSE {len(PRIORITY_ORDER)} END)"


# ------------------------------------------------------------------ snapshot x snapshot
VARIANT_COLUMNS = ["chrom", "pos", "ref", "alt", "gene", "change", "priority", "before", "after",
                   "tier_before", "tier_after", "stars_before", "stars_after", "review_before",
                   "review_after", "review_changed", "variation_id", "conditions",
                   "from_snapshot", "to_snapshot", "hgvs", "consequence", "conflicts_before",
                   "conflicts_after", "last_evaluated"]
# The wide, descriptive columns of each side: read for changed variants only.
WIDE = {"gene": "gene", "vid": "variation_id", "cond": "conditions", "hgvs": "hgvs",
        "mc": "consequence", "conf": "conflicts", "last": "last_evaluated"}


def side_sql(alias: str, snap: Snapshot, positions: str | None = None, wide: bool = True) -> str:
    """A snapshot's classified rows, with columns prefixed for the change rules; optionally only
    at the positions of a (small) relation, which spares reading the rest. The wide text columns
    (WIDE) come only when asked: a snapshot's schema may predate some (read as NULL)."""
    where = f" AND pos IN (SELECT pos FROM {positions})" if positions else ""
    text = "".join(f", {snap.column(col, f'{alias}_{short}')}" for short, col in WIDE.items()
                   ) if wide else ""
    return f"""(SELECT chrom, pos, ref, alt, classification AS {alias}_cls, tier AS {alias}_tier,
                       stars AS {alias}_stars, review_status AS {alias}_rev{text}
                FROM {db.parquet(snap.variants)}
                WHERE classification IS NOT NULL{where})"""


def select_change_columns(a: Snapshot, b: Snapshot) -> str:
    """The report columns of a change, from the prefixed `a_`/`b_` columns of both sides. The
    gene is the newer release's symbols followed by any the older one had beside them (a
    renamed symbol, a variant moved to another gene: `NEWSYM|OLDSYM`), so a panel naming the
    gene the variant was reported under still holds the change."""
    both = ("array_to_string(list_concat(string_split(b_gene, '|'), list_filter("
            "string_split(a_gene, '|'), lambda s: NOT list_contains(string_split(b_gene, '|'), "
            "s))), '|')")
    return f"""CASE WHEN a_gene IS NULL OR b_gene IS NULL OR a_gene = b_gene
                    THEN coalesce(b_gene, a_gene) ELSE {both} END AS gene, change, priority,
               a_cls AS before, b_cls AS after, a_tier AS tier_before, b_tier AS tier_after,
               a_stars AS stars_before, b_stars AS stars_after,
               a_rev AS review_before, b_rev AS review_after,
               (a_cls IS NOT NULL AND b_cls IS NOT NULL AND
                (a_stars IS DISTINCT FROM b_stars OR a_rev IS DISTINCT FROM b_rev))
                 AS review_changed,
               coalesce(b_vid, a_vid) AS variation_id, coalesce(b_cond, a_cond) AS conditions,
               {db.quote(a.name)} AS from_snapshot, {db.quote(b.name)} AS to_snapshot,
               coalesce(b_hgvs, a_hgvs) AS hgvs, coalesce(b_mc, a_mc) AS consequence,
               a_conf AS conflicts_before, b_conf AS conflicts_after,
               coalesce(b_last, a_last) AS last_evaluated"""


def snapshot_changes(con: duckdb.DuckDBPyConnection, a: Snapshot, b: Snapshot,
                     table: str) -> str:
    """Every changed variant between two snapshots, all priorities, into `table`; returns
    `table`."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {table} AS
        WITH j AS (
            SELECT coalesce(a.chrom, b.chrom) AS chrom, coalesce(a.pos, b.pos) AS pos,
                   coalesce(a.ref, b.ref) AS ref, coalesce(a.alt, b.alt) AS alt,
                   a.* EXCLUDE (chrom, pos, ref, alt), b.* EXCLUDE (chrom, pos, ref, alt)
            FROM {side_sql('a', a)} a FULL OUTER JOIN {side_sql('b', b)} b
              USING (chrom, pos, ref, alt)),
        c AS (SELECT *, {change_sql()} AS change, {priority_sql()} AS priority FROM j)
        SELECT * FROM c WHERE change IS NOT NULL
    """)
    return table
