"""Reinterpretation: what changed between two snapshots, for the snapshots themselves or for the
variants a patient carries.

Changes compare normalized terms only, so ClinVar's renames and separator drift are not changes.
The rules live once, in SQL (`change_sql`, `priority_sql`), and are shared by `snapshot diff`,
`diff` and the nightly `reanalyze`; `naive_change` is the same rule in plain Python, used by the
tests as an independent reference."""

from __future__ import annotations

import contextlib
import importlib
import logging
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from varreinterp import __version__
from varreinterp.annotate import parquet_sql, prepare_inputs, provenance, snapshot_keys_sql
from varreinterp.errors import AssemblyMismatchError, UsageError
from varreinterp.importers.common import duckdb_connect
from varreinterp.patient_vcf import ReadStats, carried_at, key_match_sql, load, select_samples
from varreinterp.prefilter import load_sites
from varreinterp.store import Snapshot, Store

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

log = logging.getLogger("varreinterp")


class ChangeKind(StrEnum):
    UPGRADE = "upgrade"
    DOWNGRADE = "downgrade"
    CONFLICT = "conflict"
    RESOLVED = "resolved"
    NEW = "new"
    GONE = "gone"
    RECLASSIFIED = "reclassified"
    REVIEW = "review"


class Priority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return list(Priority).index(self)


MIRROR = {ChangeKind.UPGRADE: ChangeKind.DOWNGRADE, ChangeKind.DOWNGRADE: ChangeKind.UPGRADE,
          ChangeKind.NEW: ChangeKind.GONE, ChangeKind.GONE: ChangeKind.NEW,
          ChangeKind.CONFLICT: ChangeKind.RESOLVED, ChangeKind.RESOLVED: ChangeKind.CONFLICT,
          ChangeKind.RECLASSIFIED: ChangeKind.RECLASSIFIED, ChangeKind.REVIEW: ChangeKind.REVIEW}

VARIANT_COLUMNS = ["chrom", "pos", "ref", "alt", "gene", "change", "priority", "before", "after",
                   "tier_before", "tier_after", "stars_before", "stars_after", "review_before",
                   "review_after", "review_changed", "variation_id", "conditions",
                   "from_snapshot", "to_snapshot"]
PATIENT_COLUMNS = ["sample", "chrom", "pos", "ref", "alt", "zygosity", *VARIANT_COLUMNS[4:]]


def _rank_sql(tier: str) -> str:
    return (f"(CASE {tier} WHEN 'benign' THEN 0 WHEN 'uncertain' THEN 1 "
            "WHEN 'pathogenic' THEN 2 END)")


def change_sql(a: str = "a", b: str = "b") -> str:
    """The change kind between `{a}_cls/_tier/_stars/_rev` and `{b}_...` (NULL: no change)."""
    ar, br = _rank_sql(f"{a}_tier"), _rank_sql(f"{b}_tier")
    return f"""(CASE
        WHEN {a}_cls IS NULL AND {b}_cls IS NULL THEN NULL
        WHEN {a}_cls IS NULL THEN 'new'
        WHEN {b}_cls IS NULL THEN 'gone'
        WHEN {a}_cls <> {b}_cls THEN CASE
            WHEN {a}_tier = {b}_tier THEN 'reclassified'
            WHEN {b}_tier = 'conflicting' THEN 'conflict'
            WHEN {a}_tier = 'conflicting' THEN 'resolved'
            WHEN {b}_tier = 'pathogenic' THEN 'upgrade'
            WHEN {a}_tier = 'pathogenic' THEN 'downgrade'
            WHEN {ar} IS NOT NULL AND {br} IS NOT NULL AND {br} > {ar} THEN 'upgrade'
            WHEN {ar} IS NOT NULL AND {br} IS NOT NULL THEN 'downgrade'
            ELSE 'reclassified' END
        WHEN {a}_stars IS DISTINCT FROM {b}_stars OR {a}_rev IS DISTINCT FROM {b}_rev
            THEN 'review'
        END)"""


def priority_sql(a: str = "a", b: str = "b") -> str:
    return f"""(CASE
        WHEN (coalesce({a}_tier, '') = 'pathogenic') <> (coalesce({b}_tier, '') = 'pathogenic')
            THEN 'high'
        WHEN coalesce({a}_tier, '') <> coalesce({b}_tier, '') THEN 'medium'
        ELSE 'low' END)"""


def naive_change(before: tuple[str, str, int | None, str | None] | None,
                 after: tuple[str, str, int | None, str | None] | None
                 ) -> tuple[ChangeKind, Priority] | None:
    """Reference implementation of the same rules, one variant at a time:
    before/after = (classification, tier, stars, review_status) or None when absent."""
    if before is None and after is None:
        return None
    a_tier = before[1] if before else None
    b_tier = after[1] if after else None
    if before is None:
        kind = ChangeKind.NEW
    elif after is None:
        kind = ChangeKind.GONE
    elif before[0] != after[0]:
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


def parse_priority(value: str) -> Priority:
    try:
        return Priority(value.lower())
    except ValueError:
        raise UsageError(f"--min-priority {value!r}: use low, medium or high") from None


def priority_filter_sql(min_priority: Priority, column: str = "priority") -> str:
    allowed = [p.value for p in Priority if p.rank >= min_priority.rank]
    return f"{column} IN (" + ", ".join(f"'{p}'" for p in allowed) + ")"


_ORDER = ("CASE priority WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END")


def check_comparable(a: Snapshot, b: Snapshot) -> None:
    if a.manifest.assembly != b.manifest.assembly:
        raise AssemblyMismatchError(
            f"cannot compare snapshots of different assemblies: {a.name} is "
            f"{a.manifest.assembly}, {b.name} is {b.manifest.assembly}")


def diff_provenance(a: Snapshot, b: Snapshot) -> dict[str, Any]:
    pa, pb = provenance(a), provenance(b)
    return {"tool": "varreinterp", "tool_version": __version__, "command": pa["command"],
            "assembly": a.manifest.assembly,
            "from_snapshot": {k: pa[k] for k in ("snapshot", "release_date", "source_sha256",
                                                 "snapshot_sha256")},
            "to_snapshot": {k: pb[k] for k in ("snapshot", "release_date", "source_sha256",
                                               "snapshot_sha256")}}


def priority_counts(priorities: pd.Series) -> list[str]:
    """'3 high', '12 medium', ...: most urgent first, absent priorities left out."""
    counts = priorities.value_counts().to_dict() if len(priorities) else {}
    return [f"{counts[p.value]} {p.value}" for p in reversed(Priority) if counts.get(p.value)]


@dataclass
class ReclassificationReport:
    """The changes, with both snapshots' provenance."""

    from_snapshot: Snapshot
    to_snapshot: Snapshot
    rows: pd.DataFrame
    min_priority: Priority
    stats: list[ReadStats] = field(default_factory=list)
    transitions: pd.DataFrame | None = None  # snapshot diff: from-tier x to-tier counts

    @property
    def provenance(self) -> dict[str, Any]:
        return diff_provenance(self.from_snapshot, self.to_snapshot)

    def per_sample_summary(self) -> list[str]:
        if "sample" not in self.rows.columns:
            return []
        lines = []
        for sample, group in self.rows.groupby("sample", sort=True):
            lines.append(f"{sample}: {', '.join(priority_counts(group['priority']))}")
        return lines

    def summary(self) -> str:
        parts = priority_counts(self.rows["priority"])
        return (f"{len(self.rows)} change(s) at or above {self.min_priority.value} priority "
                f"from {self.from_snapshot.name} ({self.from_snapshot.manifest.release_date}) to "
                f"{self.to_snapshot.name} ({self.to_snapshot.manifest.release_date})"
                + (f": {', '.join(parts)}" if parts else ""))


def _side(alias: str, snap: Snapshot, positions: str | None = None) -> str:
    """A snapshot's classified rows, with columns prefixed for the change rules; optionally only
    at the positions of a (small) relation, which spares reading the rest."""
    where = f" AND pos IN (SELECT pos FROM {positions})" if positions else ""
    return f"""(SELECT chrom, pos, ref, alt, classification AS {alias}_cls, tier AS {alias}_tier,
                       stars AS {alias}_stars, review_status AS {alias}_rev,
                       gene AS {alias}_gene, variation_id AS {alias}_vid,
                       conditions AS {alias}_cond
                FROM {parquet_sql(snap.variants)}
                WHERE classification IS NOT NULL{where})"""


def select_change_columns(a: Snapshot, b: Snapshot) -> str:
    return f"""coalesce(b_gene, a_gene) AS gene, change, priority,
               a_cls AS before, b_cls AS after, a_tier AS tier_before, b_tier AS tier_after,
               a_stars AS stars_before, b_stars AS stars_after,
               a_rev AS review_before, b_rev AS review_after,
               (a_cls IS NOT NULL AND b_cls IS NOT NULL AND
                (a_stars IS DISTINCT FROM b_stars OR a_rev IS DISTINCT FROM b_rev))
                 AS review_changed,
               coalesce(b_vid, a_vid) AS variation_id, coalesce(b_cond, a_cond) AS conditions,
               '{a.name}' AS from_snapshot, '{b.name}' AS to_snapshot"""


def diff_snapshots(store: Store, from_name: str, to_name: str,
                   min_priority: Priority = Priority.MEDIUM) -> ReclassificationReport:
    a, b = store.get(from_name), store.get(to_name)
    check_comparable(a, b)
    con = duckdb_connect()
    snapshot_changes(con, a, b, "changes")
    transitions = con.execute("""
        SELECT coalesce(tier_before, '(absent)') AS tier_before,
               coalesce(tier_after, '(absent)') AS tier_after, count(*) AS variants
        FROM (SELECT a_tier AS tier_before, b_tier AS tier_after FROM changes
              WHERE a_tier IS DISTINCT FROM b_tier)
        GROUP BY ALL ORDER BY ALL
    """).df()
    rows = con.execute(f"""
        SELECT chrom, pos, ref, alt, {select_change_columns(a, b)}
        FROM changes WHERE {priority_filter_sql(min_priority)}
        ORDER BY {_ORDER}, chrom, pos, ref, alt
    """).df()
    con.close()
    return ReclassificationReport(a, b, rows, min_priority, transitions=transitions)


def snapshot_changes(con: duckdb.DuckDBPyConnection, a: Snapshot, b: Snapshot,
                     table: str) -> None:
    """Every changed variant between two snapshots, all priorities, into `table`."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {table} AS
        WITH j AS (
            SELECT coalesce(a.chrom, b.chrom) AS chrom, coalesce(a.pos, b.pos) AS pos,
                   coalesce(a.ref, b.ref) AS ref, coalesce(a.alt, b.alt) AS alt,
                   a.* EXCLUDE (chrom, pos, ref, alt), b.* EXCLUDE (chrom, pos, ref, alt)
            FROM {_side('a', a)} a FULL OUTER JOIN {_side('b', b)} b
              USING (chrom, pos, ref, alt)),
        c AS (SELECT *, {change_sql()} AS change, {priority_sql()} AS priority FROM j)
        SELECT * FROM c WHERE change IS NOT NULL
    """)


def diff_patients(store: Store, vcfs: list[Path], from_name: str, to_name: str, *,
                  samples: list[str] | None = None, reference_path: Path | None = None,
                  min_priority: Priority = Priority.MEDIUM) -> ReclassificationReport:
    a, b = store.get(from_name), store.get(to_name)
    check_comparable(a, b)
    inputs = prepare_inputs(vcfs, a.manifest.assembly, f"snapshots {a.name}/{b.name}",
                            samples, reference_path)
    # The report is a pandas frame: its 0.5 s import runs while the VCFs are read.
    warm = threading.Thread(target=_import_quietly, args=("pandas",), daemon=True)
    warm.start()
    con = duckdb_connect()
    frames, stats = [], []
    keys = snapshot_keys_sql(a, b)
    sites = load_sites(con, keys)
    with inputs.workdir:
        for header in inputs.headers:
            idx = select_samples(header, samples)
            st = load(con, header, idx, inputs.reference, sites=sites)
            # patient_changes joins both snapshots itself: no separate key join here
            carried_at(con, header, idx, keys, "carried_hits", join_keys=False)
            frames.append(patient_changes(con, "carried_hits", a, b, min_priority))
            log.info("%s: %d records, %d carried calls, %d change(s) at or above %s",
                     header.path, st.records, st.carried, len(frames[-1]), min_priority.value)
            stats.append(st)
    con.close()
    warm.join()
    import pandas as pd

    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=PATIENT_COLUMNS)
    return ReclassificationReport(a, b, rows, min_priority, stats=stats)


def _import_quietly(module: str) -> None:
    """Warm an import; a failure surfaces where the module is really imported."""
    with contextlib.suppress(ImportError):
        importlib.import_module(module)


def patient_changes(con: duckdb.DuckDBPyConnection, carried: str, a: Snapshot, b: Snapshot,
                    min_priority: Priority) -> pd.DataFrame:
    """Changes for the (sample, allele) rows of table `carried` (columns sample, chrom,
    key_chrom, pos, ref, alt, zygosity)."""
    # Changes are found on the narrow status columns of every carried allele; the wide text
    # columns (gene, identifiers, conditions) are read for the few changed ones only.
    narrow = ", ".join(f"{{s}}.{{s}}_{c}" for c in ("cls", "tier", "stars", "rev"))
    return con.execute(f"""
        WITH j AS (
            SELECT c.sample, c.chrom, c.key_chrom, c.pos, c.ref, c.alt, c.zygosity,
                   {narrow.format(s="a")}, {narrow.format(s="b")}
            FROM {carried} c
            LEFT JOIN {_side('a', a, carried)} a
              ON {key_match_sql('a', 'c')}
            LEFT JOIN {_side('b', b, carried)} b
              ON {key_match_sql('b', 'c')}
            WHERE a.a_cls IS NOT NULL OR b.b_cls IS NOT NULL),
        changed AS (
            SELECT sample, min(chrom) AS chrom, key_chrom, pos, ref, alt,
                   string_agg(DISTINCT zygosity, ',' ORDER BY zygosity) AS zygosity,
                   any_value(COLUMNS('^[ab]_')), any_value(change) AS change,
                   any_value(priority) AS priority
            FROM (SELECT *, {change_sql()} AS change, {priority_sql()} AS priority FROM j)
            WHERE change IS NOT NULL AND {priority_filter_sql(min_priority)}
            GROUP BY sample, key_chrom, pos, ref, alt),
        c AS (
            SELECT ch.*, wa.a_gene, wa.a_vid, wa.a_cond, wb.b_gene, wb.b_vid, wb.b_cond
            FROM changed ch
            LEFT JOIN {_side('a', a, "changed")} wa ON {key_match_sql('wa', 'ch')}
            LEFT JOIN {_side('b', b, "changed")} wb ON {key_match_sql('wb', 'ch')})
        SELECT sample, chrom, pos, ref, alt, zygosity, {select_change_columns(a, b)}
        FROM c ORDER BY sample, {_ORDER}, key_chrom, pos, ref, alt
    """).df()

