"""Reinterpretation: what changed between two snapshots, for the snapshots themselves or for the
variants a patient carries. The rules themselves live in `changes.py`."""

from __future__ import annotations

import contextlib
import importlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from varreinterp import db
from varreinterp.changes import (
    PRIORITY_ORDER,
    VARIANT_COLUMNS,
    WIDE,
    Priority,
    change_sql,
    priority_filter_sql,
    priority_order_sql,
    priority_sql,
    select_change_columns,
    side_sql,
    snapshot_changes,
)
from varreinterp.errors import AssemblyMismatchError, StoreError, UsageError
from varreinterp.matching import (
    carried_at,
    check_matched_refs,
    count_ref_mismatch_calls,
    count_repeats,
    distinct_zygosities_sql,
    key_match_sql,
    merged_calls_sql,
    prepare_inputs,
    snapshot_keys_sql,
)
from varreinterp.panels import Panel, filter_frame
from varreinterp.patient_vcf import ReadStats, load, select_samples
from varreinterp.prefilter import load_sites
from varreinterp.provenance import Provenance
from varreinterp.store import Snapshot, Store

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

log = logging.getLogger("varreinterp")

PATIENT_COLUMNS = ["sample", "chrom", "pos", "ref", "alt", "zygosity", "filter",
                   *VARIANT_COLUMNS[4:]]


def check_comparable(a: Snapshot, b: Snapshot, *, cross_lineage: bool = False,
                     accept_suspect: bool = False) -> None:
    """Two snapshots a diff may compare: one build always; one lineage unless asked (a
    ClinVar release against a lab table makes nearly every variant look changed); a target
    marked suspect only when accepted."""
    if a.manifest.assembly != b.manifest.assembly:
        raise AssemblyMismatchError(
            f"cannot compare snapshots of different assemblies: {a.name} is "
            f"{a.manifest.assembly}, {b.name} is {b.manifest.assembly}")
    if a.lineage != b.lineage and not cross_lineage:
        raise UsageError(f"{a.name} ({a.lineage}) and {b.name} ({b.lineage}) are releases of "
                         "different sources: nearly every variant would look changed; pass "
                         "--cross-lineage to compare them anyway")
    if b.manifest.suspect and not accept_suspect:
        raise StoreError(f"snapshot {b.name} is marked suspect ({b.manifest.suspect}): not "
                         "used as a target; check the release, then pass --accept-suspect")
    dates = (a.manifest.release_date, b.manifest.release_date)
    if a.lineage == b.lineage and dates[0] and dates[1] and dates[0] > dates[1]:
        # Allowed (what did a release take back?), but every direction reads reversed: an
        # upgrade found here is a downgrade the newer release made.
        log.warning("comparing back in time: --from %s (%s) is newer than --to %s (%s), so "
                    "every upgrade/downgrade below reads from the newer release to the older",
                    a.name, a.manifest.release_date, b.name, b.manifest.release_date)


def priority_counts(priorities: pd.Series) -> list[str]:
    """'3 high', '12 medium', ...: most urgent first, absent priorities left out."""
    counts = priorities.value_counts().to_dict() if len(priorities) else {}
    return [f"{counts[p.value]} {p.value}" for p in PRIORITY_ORDER if counts.get(p.value)]


@dataclass
class ReclassificationReport:
    """The changes between two snapshots, most urgent first, at or above `min_priority`."""

    from_snapshot: Snapshot
    to_snapshot: Snapshot
    rows: pd.DataFrame
    min_priority: Priority
    stats: list[ReadStats] = field(default_factory=list)
    transitions: pd.DataFrame | None = None  # snapshot diff: from-tier x to-tier counts
    panel: Panel | None = None
    outside_panel: int = 0  # changes the panel left out
    below_min_priority: int = 0  # changes below `min_priority`: not in `rows`, counted

    def restrict(self, panel: Panel | None) -> ReclassificationReport:
        """Only the changes inside `panel`; the others are counted."""
        if panel is not None:
            self.rows, self.outside_panel = filter_frame(panel, self.rows)
            self.panel = panel
        return self

    def provenance(self, command: str) -> Provenance:
        return Provenance.of(command, ("from_snapshot", self.from_snapshot),
                             ("to_snapshot", self.to_snapshot),
                             facts=[("min_priority", self.min_priority.value)])

    def per_sample_summary(self) -> list[str]:
        if "sample" not in self.rows.columns:
            return []
        return [f"{sample}: {', '.join(priority_counts(group['priority']))}"
                for sample, group in self.rows.groupby("sample", sort=True)]

    def summary(self) -> str:
        parts = priority_counts(self.rows["priority"])
        return (f"{len(self.rows)} change(s) at or above {self.min_priority.value} priority "
                f"from {self.from_snapshot.name} ({self.from_snapshot.manifest.release_date}) to "
                f"{self.to_snapshot.name} ({self.to_snapshot.manifest.release_date})"
                + (f": {', '.join(parts)}" if parts else "")
                + (f"; {self.below_min_priority} lower-priority change(s) (below "
                   f"{self.min_priority.value}) not listed (--all lists them)"
                   if self.below_min_priority else "")
                + (f"; {self.outside_panel} outside {self.panel.summary()}" if self.panel
                   else ""))


def diff_snapshots(store: Store, from_name: str, to_name: str,
                   min_priority: Priority = Priority.MEDIUM,
                   workdir: Path | None = None, *, cross_lineage: bool = False,
                   accept_suspect: bool = False) -> ReclassificationReport:
    """Every classified variant whose classification or review changed from snapshot
    `from_name` to `to_name` (same build), with the tier-transition counts of all of them."""
    a, b = store.use(from_name), store.use(to_name)
    check_comparable(a, b, cross_lineage=cross_lineage, accept_suspect=accept_suspect)
    con = db.connect(workdir)
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
        ORDER BY {priority_order_sql()}, chrom, pos, ref, alt
    """).df()
    below = int(db.scalar(con, f"SELECT count(*) FROM changes "
                               f"WHERE NOT {priority_filter_sql(min_priority)}") or 0)
    con.close()
    return ReclassificationReport(a, b, rows, min_priority, transitions=transitions,
                                  below_min_priority=below)


def diff_patients(store: Store, vcfs: Sequence[Path], from_name: str, to_name: str,
                  workdir: Path, *, samples: list[str] | None = None,
                  reference_path: Path | None = None,
                  min_priority: Priority = Priority.MEDIUM, cross_lineage: bool = False,
                  accept_suspect: bool = False, pass_only: bool = False
                  ) -> ReclassificationReport:
    """The changes from `from_name` to `to_name` among the variants these patients carry
    (one sample in several files is one patient: each change once, its repeats counted)."""
    a, b = store.use(from_name), store.use(to_name)
    check_comparable(a, b, cross_lineage=cross_lineage, accept_suspect=accept_suspect)
    inputs = prepare_inputs(vcfs, workdir, assembly=a.manifest.assembly,
                            what=f"snapshots {a.name}/{b.name}", samples=samples,
                            reference_path=reference_path)
    # The report is a pandas frame: its 0.5 s import runs while the VCFs are read.
    warm = threading.Thread(target=_import_quietly, args=("pandas",), daemon=True)
    warm.start()
    con = db.connect(workdir)
    stats: list[ReadStats] = []
    tables: list[str] = []
    keys = snapshot_keys_sql(a, b)
    sites = load_sites(con, keys)
    for n, header in enumerate(inputs.headers):
        calls = load(con, header, select_samples(header, samples), inputs.reference,
                     pass_only, sites)
        count_ref_mismatch_calls(calls)
        # patient_changes joins both snapshots itself: no separate key join here
        carried = carried_at(calls, keys, f"carried_{n}", join_keys=False)
        if inputs.reference is not None:  # as annotate does: a REF the FASTA contradicts
            check_matched_refs(con, inputs.reference, carried, calls.stats, keys)
        count_repeats(con, carried, tables, calls.stats)
        stats.append(calls.stats)
        tables.append(carried)
    con.execute(f"CREATE TEMP TABLE carried_hits AS {merged_calls_sql(tables)}")
    rows, below = patient_changes(con, "carried_hits", a, b, min_priority)
    con.close()
    warm.join()
    # Each change is counted in the first file holding its call.
    per_file = rows.pop("f").value_counts().to_dict()
    for n, st in enumerate(stats):
        log.info("%s: %d records, %d carried calls, %d change(s) at or above %s; not "
                 "reported: %s", st.path, st.records, st.carried, per_file.get(n, 0),
                 min_priority.value, st.not_reported())
        said = st.ref_mismatch_warning(inputs.reference.path if inputs.reference else None)
        if said:
            log.warning("%s", said)
    return ReclassificationReport(a, b, rows, min_priority, stats=stats,
                                  below_min_priority=below)


def _import_quietly(module: str) -> None:
    """Warm an import; a failure surfaces where the module is really imported."""
    with contextlib.suppress(ImportError):
        importlib.import_module(module)


def patient_changes(con: duckdb.DuckDBPyConnection, carried: str, a: Snapshot, b: Snapshot,
                    min_priority: Priority) -> tuple[pd.DataFrame, int]:
    """(the changes at or above `min_priority` for the (sample, allele) rows of table
    `carried` (columns f, sample, chrom, key_chrom, pos, ref, alt, zygosity, filter), with
    their file `f`; how many changes below `min_priority` were left out)."""
    # Changes are found on the narrow status columns of every carried allele; the wide text
    # columns (gene, identifiers, conditions) are read for the few changed ones only.
    narrow = ", ".join(f"{{s}}.{{s}}_{c}" for c in ("cls", "tier", "stars", "rev"))
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE changed_calls AS
        WITH j AS (
            SELECT c.f, c.sample, c.chrom, c.key_chrom, c.pos, c.ref, c.alt, c.zygosity,
                   c.filter, {narrow.format(s="a")}, {narrow.format(s="b")}
            FROM {carried} c
            LEFT JOIN {side_sql('a', a, carried, wide=False)} a
              ON {key_match_sql('a', 'c')}
            LEFT JOIN {side_sql('b', b, carried, wide=False)} b
              ON {key_match_sql('b', 'c')}
            WHERE a.a_cls IS NOT NULL OR b.b_cls IS NOT NULL)
        SELECT min(f) AS f, sample, min(chrom) AS chrom, key_chrom, pos, ref, alt,
               {distinct_zygosities_sql()} AS zygosity,
               arg_min(filter, chrom) AS filter,
               any_value(COLUMNS('^[ab]_')), any_value(change) AS change,
               any_value(priority) AS priority
        FROM (SELECT *, {change_sql()} AS change, {priority_sql()} AS priority FROM j)
        WHERE change IS NOT NULL
        GROUP BY sample, key_chrom, pos, ref, alt
    """)
    below = int(db.scalar(con, f"SELECT count(*) FROM changed_calls "
                               f"WHERE NOT {priority_filter_sql(min_priority)}") or 0)
    rows = con.execute(f"""
        WITH changed AS (
            SELECT * FROM changed_calls WHERE {priority_filter_sql(min_priority)}),
        c AS (
            SELECT ch.*, {wide_columns('wa', 'a')}, {wide_columns('wb', 'b')}
            FROM changed ch
            LEFT JOIN {side_sql('a', a, "changed")} wa ON {key_match_sql('wa', 'ch')}
            LEFT JOIN {side_sql('b', b, "changed")} wb ON {key_match_sql('wb', 'ch')})
        SELECT sample, chrom, pos, ref, alt, zygosity, filter, {select_change_columns(a, b)}, f
        FROM c ORDER BY sample, {priority_order_sql()}, key_chrom, pos, ref, alt
    """).df()
    return rows, below


def wide_columns(table: str, side: str) -> str:
    """The wide text columns of one side, from a `side_sql` relation aliased `table`."""
    return ", ".join(f"{table}.{side}_{short}" for short in WIDE)
