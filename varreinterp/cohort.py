"""The cohort: patients registered once, their carried normalized alleles in an index, and the
nightly reanalysis that reports each change once per patient.

Layout under the store::

    cohort/patients.json         registry (schema-versioned): one entry per patient
    cohort/index/<key>.parquet   one file per patient: chrom, key_chrom, pos, ref, alt, zygosity
    reports/<stamp>-<snapshot>/  default output of `reanalyze`

A run writes its report folder first (staged, then renamed) and only then records the patients
as reviewed, so a run killed at any moment is simply redone by the next one."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from varreinterp import __version__
from varreinterp.annotate import parquet_sql, prepare_inputs
from varreinterp.diff import (
    PATIENT_COLUMNS,
    Priority,
    diff_provenance,
    priority_counts,
    priority_filter_sql,
    select_change_columns,
    snapshot_changes,
)
from varreinterp.errors import InputError, StoreError, UsageError, VarreinterpError
from varreinterp.importers.common import duckdb_connect
from varreinterp.patient_vcf import key_match_sql, load, select_samples
from varreinterp.store import Snapshot, Store, sha256_file, write_json_atomic

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

log = logging.getLogger("varreinterp")

REGISTRY_SCHEMA_VERSION = 1
RUN_SCHEMA_VERSION = 1
REANALYZE_COLUMNS = ["patient", *PATIENT_COLUMNS]


@dataclass
class Patient:
    patient_id: str
    sample: str
    source: str
    source_sha256: str
    source_size: int
    source_mtime: float
    assembly: str
    baseline_snapshot: str
    reviewed_snapshot: str
    alleles: int
    index_file: str
    added_at: str
    reviewed_at: str | None = None


@dataclass
class Registry:
    patients: dict[str, Patient] = field(default_factory=dict)
    # Ids of the reanalyze runs whose reports were delivered (patients recorded as reviewed).
    delivered_runs: list[str] = field(default_factory=list)

    @staticmethod
    def path(store: Store) -> Path:
        return store.root / "cohort" / "patients.json"

    @classmethod
    def load(cls, store: Store) -> Registry:
        path = cls.path(store)
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text())
            if data.get("schema_version") != REGISTRY_SCHEMA_VERSION:
                raise StoreError(f"{path}: unsupported cohort schema version "
                                 f"{data.get('schema_version')!r}")
            return cls({pid: Patient(**p) for pid, p in data["patients"].items()},
                       list(data.get("delivered_runs", [])))
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise StoreError(f"{path}: unreadable cohort registry ({exc})") from exc

    def save(self, store: Store) -> None:
        write_json_atomic(self.path(store), {
            "schema_version": REGISTRY_SCHEMA_VERSION,
            "patients": {pid: asdict(p) for pid, p in sorted(self.patients.items())},
            "delivered_runs": self.delivered_runs[-1000:]})

    def get(self, patient_id: str) -> Patient:
        try:
            return self.patients[patient_id]
        except KeyError:
            raise StoreError(f"no patient {patient_id!r} in the cohort") from None


def _index_dir(store: Store) -> Path:
    return store.root / "cohort" / "index"


def _index_name(patient_id: str) -> str:
    return hashlib.sha256(patient_id.encode()).hexdigest()[:24] + ".parquet"


def _report_name(patient_id: str) -> str:
    """A readable, filesystem-safe file name for a patient's report."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", patient_id).lstrip(".") or "patient"
    if safe != patient_id:
        safe += "-" + hashlib.sha256(patient_id.encode()).hexdigest()[:8]
    return safe + ".tsv"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------ cohort add
@dataclass
class AddOutcome:
    patient_id: str
    sample: str
    status: str  # added | unchanged | re-ingested
    alleles: int


def cohort_add(store: Store, vcfs: list[Path], *, samples: list[str] | None = None,
               patient_id: str | None = None, baseline: str | None = None,
               reference_path: Path | None = None,
               progress: Callable[[int, int], None] | None = None) -> list[AddOutcome]:
    """Register every sample of `vcfs`; `progress(done, total)` is called after each file."""
    outcomes: list[AddOutcome] = []
    with store.lock("cohort add"):
        registry = Registry.load(store)
        base_snap = store.get(baseline) if baseline else None
        for n, vcf in enumerate(vcfs, start=1):
            outcomes += _add_one(store, registry, vcf, samples, patient_id, base_snap,
                                 reference_path)
            if progress:
                progress(n, len(vcfs))
    return outcomes


def _add_one(store: Store, registry: Registry, vcf: Path, samples: list[str] | None,
             patient_id: str | None, base_snap: Snapshot | None,
             reference_path: Path | None) -> list[AddOutcome]:
    if not vcf.is_file():
        raise InputError("no such file", vcf)
    st = vcf.stat()
    sha = sha256_file(vcf)
    source = str(vcf.resolve())
    inputs = prepare_inputs([vcf], "", "", samples, reference_path, check=False)
    try:
        return _add_prepared(store, registry, vcf, inputs, samples, patient_id, base_snap,
                             sha, source, st)
    finally:
        inputs.workdir.cleanup()


def _add_prepared(store: Store, registry: Registry, vcf: Path, inputs: Any,
                  samples: list[str] | None, patient_id: str | None,
                  base_snap: Snapshot | None, sha: str, source: str,
                  st: os.stat_result) -> list[AddOutcome]:
    header = inputs.headers[0]
    found = header.assembly()
    if base_snap is not None:
        assembly = base_snap.manifest.assembly
        if found and found.value != assembly:
            raise InputError(f"genome build mismatch: the VCF is {found.value} but baseline "
                             f"snapshot {base_snap.name} is {assembly}", vcf)
    elif found is not None:
        assembly = found.value
    else:
        raise UsageError(f"{vcf}: the header does not tell the genome build; give --baseline")
    baseline = base_snap or store.newest(assembly)
    if baseline is None:
        raise StoreError(f"no stored snapshot of assembly {assembly} to use as baseline")
    idx = select_samples(header, samples)
    if patient_id and len(idx) != 1:
        raise UsageError("--patient-id needs exactly one sample (use --sample)")
    todo, outcomes = [], []
    for i in idx:
        sample = header.samples[i]
        pid = patient_id or sample
        old = registry.patients.get(pid)
        if old and old.source_sha256 == sha and old.sample == sample:
            if (old.source, old.source_size, old.source_mtime) != (source, st.st_size,
                                                                   st.st_mtime):
                # Same content, moved or touched: point the registry at it, no re-indexing.
                old.source, old.source_size, old.source_mtime = source, st.st_size, st.st_mtime
                outcomes.append(AddOutcome(pid, sample, "relocated", old.alleles))
            else:
                outcomes.append(AddOutcome(pid, sample, "unchanged", old.alleles))
            continue
        todo.append((i, sample, pid, old))
    if not todo:
        if any(o.status == "relocated" for o in outcomes):
            registry.save(store)
        return outcomes
    con = duckdb_connect()
    index_dir = _index_dir(store)
    index_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with store.staging() as staging:
        stats = load(con, header, [i for i, *_ in todo], inputs.reference)
        log.info("%s: %d records, %d carried calls", vcf, stats.records, stats.carried)
        con.execute("CREATE OR REPLACE TEMP TABLE carried_all AS SELECT * FROM carried")
        staged = []
        for _, sample, pid, old in todo:
            name = _index_name(pid)
            out = staging / name
            con.execute(f"""
                COPY (SELECT min(chrom) AS chrom, key_chrom, pos, ref, alt,
                             string_agg(DISTINCT zygosity, ',' ORDER BY zygosity) AS zygosity
                      FROM carried_all WHERE sample = ?
                      GROUP BY key_chrom, pos, ref, alt ORDER BY key_chrom, pos, ref, alt)
                TO '{str(out).replace("'", "''")}' (FORMAT parquet, COMPRESSION zstd)
            """, [sample])
            n = con.execute(f"SELECT count(*) FROM {parquet_sql(out)}").fetchall()[0][0]
            staged.append((sample, pid, old, name, n))
        con.close()
        for sample, pid, old, name, n in staged:
            os.replace(staging / name, index_dir / name)
            # A changed file keeps the snapshot the patient was last reported against,
            # unless --baseline says otherwise.
            reviewed = base_snap.name if base_snap else (
                old.reviewed_snapshot if old else baseline.name)
            registry.patients[pid] = Patient(
                patient_id=pid, sample=sample, source=source, source_sha256=sha,
                source_size=st.st_size, source_mtime=st.st_mtime, assembly=assembly,
                baseline_snapshot=baseline.name,
                reviewed_snapshot=reviewed,
                alleles=int(n), index_file=name, added_at=_now())
            outcomes.append(AddOutcome(pid, sample, "re-ingested" if old else "added", int(n)))
        registry.save(store)
    return outcomes


def cohort_remove(store: Store, patient_id: str) -> None:
    with store.lock("cohort remove"):
        registry = Registry.load(store)
        patient = registry.get(patient_id)
        del registry.patients[patient_id]
        registry.save(store)
        (_index_dir(store) / patient.index_file).unlink(missing_ok=True)


# ------------------------------------------------------------------------------ reanalyze
@dataclass
class PatientProblem:
    patient_id: str
    problem: str


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
              dry_run: bool = False) -> ReanalysisResult:
    if dry_run:
        return _reanalyze(store, to, min_priority, out, dry_run)
    with store.lock("reanalyze"):
        return _reanalyze(store, to, min_priority, out, dry_run)


def _reanalyze(store: Store, to: str | None, min_priority: Priority, out: Path | None,
               dry_run: bool) -> ReanalysisResult:
    import pandas as pd

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
    con = duckdb_connect()
    index_dir = _index_dir(store)
    for (a_name, b_name), patients in sorted(groups.items()):
        t1 = time.perf_counter()
        a, b = store.get(a_name), store.get(b_name)
        frames.append(_changes_for(con, a, b, patients, index_dir, min_priority))
        processed += [p.patient_id for p in patients]
        timings[f"{a_name}->{b_name}_s"] = time.perf_counter() - t1
    con.close()
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=REANALYZE_COLUMNS)
    timings["total_s"] = time.perf_counter() - t0
    result = ReanalysisResult(target, rows, processed, up_to_date, problems, None, timings,
                              min_priority)
    if problems and not processed and not up_to_date:
        raise InputError(f"every patient failed ({len(problems)}): {problems[0].problem}")
    if dry_run:
        return result
    run_id = uuid.uuid4().hex[:12]
    result.out_dir = _write_reports(store, registry, result, groups, out, run_id)
    # Only now, with the report on disk, are these patients recorded as reviewed.
    registry.delivered_runs.append(run_id)
    stamp = _now()
    for pid in processed:
        registry.patients[pid].reviewed_snapshot = target_by_assembly[
            registry.patients[pid].assembly].name
        registry.patients[pid].reviewed_at = stamp
    registry.save(store)
    return result


def _changes_for(con: duckdb.DuckDBPyConnection, a: Snapshot, b: Snapshot,
                 patients: list[Patient], index_dir: Path, min_priority: Priority
                 ) -> pd.DataFrame:
    """Changed keys between the snapshots first; only those are joined with the patients'
    indexes, so the work is proportional to what changed."""
    snapshot_changes(con, a, b, "delta")
    con.execute(f"DELETE FROM delta WHERE NOT ({priority_filter_sql(min_priority)})")
    files = [str(index_dir / p.index_file) for p in patients]
    con.execute("CREATE OR REPLACE TEMP TABLE index_names (index_file VARCHAR, patient VARCHAR,"
                " sample VARCHAR)")
    con.executemany("INSERT INTO index_names VALUES (?, ?, ?)",
                    [(p.index_file, p.patient_id, p.sample) for p in patients])
    file_list = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    return con.execute(f"""
        WITH idx AS (
            SELECT regexp_extract(filename, '[^/]+$') AS index_file, chrom, key_chrom, pos,
                   ref, alt, zygosity
            FROM read_parquet({file_list}, filename = true)),
        hit AS (
            SELECT n.patient, n.sample, i.chrom, i.key_chrom, i.pos, i.ref, i.alt, i.zygosity,
                   d.* EXCLUDE (chrom, pos, ref, alt)
            FROM idx i JOIN delta d
              ON {key_match_sql('d', 'i')}
            JOIN index_names n ON n.index_file = i.index_file)
        SELECT patient, sample, chrom, pos, ref, alt, zygosity, {select_change_columns(a, b)}
        FROM hit
        ORDER BY patient, CASE priority WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END,
                 key_chrom, pos, ref, alt
    """).df()


def _check_out(registry: Registry, out: Path) -> None:
    """Never overwrite a report that was delivered: its patients were recorded as reviewed and
    would not be reported again. A report of a run killed before it was recorded is redone."""
    report = out / "run.json"
    if not report.exists():
        return
    try:
        run_id = json.loads(report.read_text()).get("run_id")
    except (OSError, ValueError, AttributeError):
        run_id = None
    if run_id is None or run_id in registry.delivered_runs:
        raise UsageError(f"--out {out} already holds a delivered report; choose a new folder")


def _write_reports(store: Store, registry: Registry, result: ReanalysisResult,
                   groups: dict[tuple[str, str], list[Patient]], out: Path | None,
                   run_id: str) -> Path:
    """Stage the whole report folder, then rename it into place (run.json written last)."""
    if out is None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        out = store.root / "reports" / f"{stamp}-{result.to_snapshot.name}-{run_id[:6]}"
    _check_out(registry, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Staged in the store's tmp/ (cleaned under the lock) when the report lives in the store;
    # beside a custom --out otherwise, so the final rename stays on one file system.
    inside = out.resolve().is_relative_to(store.root.resolve())
    if not inside:
        for leftover in out.parent.glob(f".{out.name}.stage-*"):
            shutil.rmtree(leftover, ignore_errors=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.stage-",
                                  dir=store.tmp_dir if inside else out.parent))
    try:
        (stage / "patients").mkdir()
        rows = result.rows
        cols = REANALYZE_COLUMNS
        rows[cols].to_csv(stage / "changes.tsv", sep="\t", index=False, na_rep="",
                          lineterminator="\n")
        per_patient = result.per_patient()
        for pid, group in rows.groupby("patient", sort=True):
            fname = _report_name(str(pid))
            group[cols].to_csv(stage / "patients" / fname, sep="\t", index=False, na_rep="",
                               lineterminator="\n")
        provs = {f"{a}->{b}": diff_provenance(store.get(a), store.get(b)) for a, b in groups}
        report: dict[str, Any] = {
            "schema_version": RUN_SCHEMA_VERSION, "run_id": run_id, "tool": "varreinterp",
            "tool_version": __version__, "finished_at": _now(),
            "to_snapshot": result.to_snapshot.name, "min_priority": result.min_priority.value,
            "comparisons": provs,
            "patients": {
                "reanalyzed": len(result.processed), "up_to_date": len(result.up_to_date),
                "skipped": [asdict(p) for p in result.problems]},
            "changes": {"total": len(rows), "per_patient": per_patient,
                        "patient_files": {pid: "patients/" + _report_name(pid)
                                          for pid in per_patient}},
            "timings": result.timings,
        }
        with open(stage / "run.json", "w") as fh:
            json.dump(report, fh, indent=2, sort_keys=True, default=str)
        if (out / "run.json").exists():
            # An undelivered report of a killed run (checked above): replace it whole.
            trash = Path(tempfile.mkdtemp(prefix=".trash-", dir=stage.parent))
            os.rename(out, trash / "old")
            os.rename(stage, out)
            shutil.rmtree(trash, ignore_errors=True)
        elif not out.exists():
            os.rename(stage, out)
        else:  # an existing folder of the user's: add our files, touch nothing else
            (out / "patients").mkdir(exist_ok=True)
            for f in sorted((stage / "patients").iterdir()):
                os.replace(f, out / "patients" / f.name)
            os.replace(stage / "changes.tsv", out / "changes.tsv")
            os.replace(stage / "run.json", out / "run.json")
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    return out


def cohort_status(store: Store, min_priority: Priority = Priority.MEDIUM
                  ) -> tuple[list[dict[str, Any]], ReanalysisResult | None]:
    registry = Registry.load(store)
    if not registry.patients:
        return [], None
    try:
        pending = _reanalyze(store, None, min_priority, None, dry_run=True)
    except VarreinterpError:
        pending = None
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
