"""The nightly reanalysis: every registered patient's changes since the snapshot it was last
reviewed against, each reported once.

A run writes its report folder first (staged, then renamed; `output/reports.py`) and only then
records the patients as reviewed, so a run killed at any moment is simply redone by the next
one."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from varreinterp import db
from varreinterp.changes import (
    Priority,
    priority_filter_sql,
    priority_order_sql,
    select_change_columns,
    snapshot_changes,
)
from varreinterp.cohort import Patient, Registry, index_dir, now
from varreinterp.diff import PATIENT_COLUMNS, priority_counts
from varreinterp.errors import InputError, StoreError, UsageError
from varreinterp.matching import key_match_sql
from varreinterp.provenance import Provenance
from varreinterp.store import Snapshot, Store, sha256_file

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

log = logging.getLogger("varreinterp")

REANALYZE_COLUMNS = ["patient", *PATIENT_COLUMNS]


@dataclass
class PatientProblem:
    patient_id: str
    problem: str


@dataclass
class Comparison:
    """The patients reanalyzed from one reviewed snapshot to one target."""

    from_snapshot: Snapshot
    to_snapshot: Snapshot
    patients: list[Patient]


@dataclass
class ReanalysisResult:
    to_snapshot: Snapshot
    rows: pd.DataFrame
    processed: list[str]
    up_to_date: list[str]
    problems: list[PatientProblem]
    out_dir: Path | None
    timings: dict[str, float]
    min_priority: Priority
    comparisons: list[Comparison]
    run_id: str = ""

    def provenance(self, command: str) -> Provenance:
        roles: list[tuple[str, Snapshot]] = []
        for n, c in enumerate(self.comparisons, start=1):
            roles += [(f"from_{n}", c.from_snapshot), (f"to_{n}", c.to_snapshot)]
        return Provenance.of(command, *roles, facts=[
            ("run_id", self.run_id), ("target_snapshot", self.to_snapshot.name),
            ("min_priority", self.min_priority.value)])

    def per_patient(self) -> dict[str, int]:
        if not len(self.rows):
            return {}
        return {str(k): int(v) for k, v in self.rows.groupby("patient").size().items()}

    def summary(self) -> str:
        parts = priority_counts(self.rows["priority"])
        return (f"reanalyze to {self.to_snapshot.name}: {len(self.processed)} patient(s) "
                f"reanalyzed, {len(self.up_to_date)} already up to date, "
                f"{len(self.problems)} skipped with problems"
                + (" (" + "; ".join(f"{p.patient_id}: {p.problem}" for p in self.problems[:3])
                   + ("; ..." if len(self.problems) > 3 else "") + ")" if self.problems else "")
                + f"; {len(self.rows)} change(s) at or "
                f"above {self.min_priority.value} in {len(self.per_patient())} patient(s)"
                + (f" ({', '.join(parts)})" if parts else "")
                + (f"; report in {self.out_dir}" if self.out_dir else ""))


def _source_problem(p: Patient) -> str | None:
    """A patient's VCF must still be the file that was indexed (size and mtime first, the
    checksum only when those moved)."""
    path = Path(p.source)
    if not path.is_file():
        return f"VCF {p.source} is missing"
    st = path.stat()
    if st.st_size == p.source_size and st.st_mtime == p.source_mtime:
        return None
    if sha256_file(path) != p.source_sha256:
        return f"VCF {p.source} changed since cohort add (re-run cohort add)"
    return None


def reanalyze(store: Store, *, to: str | None = None,
              min_priority: Priority = Priority.MEDIUM, out: Path | None = None,
              dry_run: bool = False, command: str = "") -> ReanalysisResult:
    """Compare every patient not yet reviewed against the target (`to`, else the newest
    snapshot of its build) and, unless `dry_run`, deliver the report folder and record the
    patients as reviewed."""
    if dry_run:
        with store.workdir() as workdir:
            return _reanalyze(store, to, min_priority, out, dry_run, command, workdir)
    with store.lock("reanalyze"), store.workdir() as workdir:
        return _reanalyze(store, to, min_priority, out, dry_run, command, workdir)


def _reanalyze(store: Store, to: str | None, min_priority: Priority, out: Path | None,
               dry_run: bool, command: str, workdir: Path) -> ReanalysisResult:
    import pandas as pd

    from varreinterp.output.reports import write_report_folder

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    registry = Registry.load(store)
    if not registry.patients:
        raise UsageError("the cohort is empty: register patients with `cohort add` first")
    target_by_assembly: dict[str, Snapshot] = {}
    if to:
        snap = store.get(to)
        target_by_assembly[snap.manifest.assembly] = snap
    groups: dict[tuple[str, str], list[Patient]] = {}
    up_to_date, problems = [], []
    for p in registry.patients.values():
        target = target_by_assembly.get(p.assembly)
        if target is None and not to:
            target = store.newest(p.assembly)
            if target is not None:
                target_by_assembly[p.assembly] = target
        if target is None:
            continue  # --to is of another assembly: not this patient's run
        if p.reviewed_snapshot == target.name:
            up_to_date.append(p.patient_id)
            continue
        problem = _source_problem(p)
        if problem is None and not store.exists(p.reviewed_snapshot):
            problem = f"last reviewed snapshot {p.reviewed_snapshot} is no longer stored"
        if problem:
            problems.append(PatientProblem(p.patient_id, problem))
            log.debug("patient %s skipped: %s", p.patient_id, problem)
            continue
        groups.setdefault((p.reviewed_snapshot, target.name), []).append(p)
    timings["check_patients_s"] = time.perf_counter() - t0
    if to and not target_by_assembly:
        raise UsageError(f"no patient of assembly {store.get(to).manifest.assembly}")
    target = store.get(to) if to else next(iter(target_by_assembly.values()), None)
    if target is None:
        raise StoreError("no stored snapshot for the cohort's assemblies")
    frames = []
    processed: list[str] = []
    comparisons: list[Comparison] = []
    con = db.connect(workdir)
    for (a_name, b_name), patients in sorted(groups.items()):
        t1 = time.perf_counter()
        a, b = store.get(a_name), store.get(b_name)
        comparisons.append(Comparison(a, b, patients))
        frames.append(_changes_for(con, a, b, patients, index_dir(store), min_priority))
        processed += [p.patient_id for p in patients]
        timings[f"{a_name}->{b_name}_s"] = time.perf_counter() - t1
    con.close()
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=REANALYZE_COLUMNS)
    timings["total_s"] = time.perf_counter() - t0
    result = ReanalysisResult(target, rows, processed, up_to_date, problems, None, timings,
                              min_priority, comparisons)
    if problems and not processed and not up_to_date:
        raise InputError(f"every patient failed ({len(problems)}): {problems[0].problem}")
    if dry_run:
        return result
    result.run_id = uuid.uuid4().hex[:12]
    result.out_dir = write_report_folder(store, set(registry.delivered_runs), result, out,
                                         result.provenance(command))
    # Only now, with the report on disk, are these patients recorded as reviewed.
    registry.delivered_runs.append(result.run_id)
    stamp = now()
    for pid in processed:
        registry.patients[pid].reviewed_snapshot = target_by_assembly[
            registry.patients[pid].assembly].name
        registry.patients[pid].reviewed_at = stamp
    registry.save(store)
    return result


def _changes_for(con: duckdb.DuckDBPyConnection, a: Snapshot, b: Snapshot,
                 patients: list[Patient], folder: Path, min_priority: Priority
                 ) -> pd.DataFrame:
    """Changed keys between the snapshots first; only those are joined with the patients'
    indexes, so the work is proportional to what changed."""
    snapshot_changes(con, a, b, "delta")
    con.execute(f"DELETE FROM delta WHERE NOT ({priority_filter_sql(min_priority)})")
    files = [folder / p.index_file for p in patients]
    con.execute("CREATE OR REPLACE TEMP TABLE index_names (index_file VARCHAR, patient VARCHAR,"
                " sample VARCHAR)")
    con.executemany("INSERT INTO index_names VALUES (?, ?, ?)",
                    [(p.index_file, p.patient_id, p.sample) for p in patients])
    return con.execute(f"""
        WITH idx AS (
            SELECT regexp_extract(filename, '[^/]+$') AS index_file, chrom, key_chrom, pos,
                   ref, alt, zygosity
            FROM read_parquet({db.quote_list([str(f) for f in files])}, filename = true)),
        hit AS (
            SELECT n.patient, n.sample, i.chrom, i.key_chrom, i.pos, i.ref, i.alt, i.zygosity,
                   d.* EXCLUDE (chrom, pos, ref, alt)
            FROM idx i JOIN delta d
              ON {key_match_sql('d', 'i')}
            JOIN index_names n ON n.index_file = i.index_file)
        SELECT patient, sample, chrom, pos, ref, alt, zygosity, {select_change_columns(a, b)}
        FROM hit
        ORDER BY patient, {priority_order_sql()}, key_chrom, pos, ref, alt
    """).df()


def cohort_status(store: Store, min_priority: Priority = Priority.MEDIUM
                  ) -> tuple[list[dict[str, Any]], ReanalysisResult | None]:
    """Each patient's build, reviewed and newest snapshot, and the changes waiting. A store
    that cannot be read fails here: a status never shows zeros for an error."""
    registry = Registry.load(store)
    if not registry.patients:
        return [], None
    pending = _dry_run(store, min_priority)
    waiting = pending.per_patient() if pending else {}
    rows = []
    for p in sorted(registry.patients.values(), key=lambda p: (p.assembly, p.patient_id)):
        newest = store.newest(p.assembly)
        rows.append({"patient": p.patient_id, "sample": p.sample, "assembly": p.assembly,
                     "reviewed_snapshot": p.reviewed_snapshot,
                     "newest_snapshot": newest.name if newest else None,
                     "waiting_changes": waiting.get(p.patient_id, 0),
                     "alleles": p.alleles, "source": p.source})
    return rows, pending


def _dry_run(store: Store, min_priority: Priority) -> ReanalysisResult:
    with store.workdir() as workdir:
        return _reanalyze(store, None, min_priority, None, True, "", workdir)
