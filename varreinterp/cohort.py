"""The cohort: patients registered once, their carried normalized alleles in an inverted
index (read by the nightly `reanalyze`, see reanalyze.py; the index itself: cohort_index.py).

A patient is an id plus a build: re-adding an id with another file is refused unless
`--replace`, and another build is always refused. Each patient follows the lineages it has a
baseline in (`clinvar/GRCh38`, a lab table's...), each with the snapshot it was last reviewed
against. Each registration gets a new patient number, the key of its rows in the index; a
replaced VCF keeps its previous number live until the next reanalysis has delivered what the
replacement changed (newly carried and no longer carried alleles).

Layout under the store::

    cohort/patients.json   registry (schema-versioned): patients, the index catalog, runs
    cohort/bins/...        the inverted index (cohort_index.py)

A `cohort add` of many files is all or nothing: every batch is indexed into staging (on a
cluster of worker processes when that pays), then the files move into place under new names
and the registry is written once (the commit point). Stores of schema 1 and 2 (one index file
per patient) are migrated on first use, or with `cohort migrate`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from varreinterp import db
from varreinterp.atomic import write_json_atomic
from varreinterp.cohort_index import (
    MAX_FILES_PER_BIN,
    Catalog,
    CompactTask,
    IndexFile,
    compact_bin,
    new_batch_id,
    publish,
    remove_orphans,
    stage_rows,
)
from varreinterp.engine import EngineChoice, EngineInfo, engine
from varreinterp.errors import InputError, StoreError, UsageError
from varreinterp.matching import PreparedInputs, prepare_inputs, unique_calls_columns
from varreinterp.patient_vcf import FastaReference, VcfHeader, load, select_samples
from varreinterp.store import Snapshot, Store, check_fields, lineage_of, read_json, sha256_file

log = logging.getLogger("varreinterp")

REGISTRY_SCHEMA_VERSION = 3
BATCH_BYTES = 128 << 20  # compressed VCF per indexing task (about 200 exomes): bounds its memory


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
    alleles: int
    number: int  # the key of this registration's rows in the inverted index
    added_at: str
    # lineage -> the snapshot this patient was last reviewed (reported) against
    reviewed: dict[str, str] = field(default_factory=dict)
    reviewed_at: str | None = None
    # After a replaced VCF: per lineage, the number of the registration last delivered there,
    # live until that lineage has had the newly / no longer carried alleles delivered.
    previous: dict[str, int] = field(default_factory=dict)
    pass_only: bool = False
    group: str | None = None

    def follows(self, lineage: str) -> bool:
        return lineage in self.reviewed

    @property
    def replacement_pending(self) -> list[str]:
        return sorted(self.previous)

    @property
    def numbers(self) -> list[int]:
        return [self.number, *sorted(set(self.previous.values()) - {self.number})]


@dataclass
class Registry:
    patients: dict[str, Patient] = field(default_factory=dict)
    # Ids of the reanalyze runs whose reports were delivered (patients recorded as reviewed).
    delivered_runs: list[str] = field(default_factory=list)
    catalog: Catalog = field(default_factory=Catalog)
    next_number: int = 1
    engine: dict[str, object] | None = None  # what indexed the last batch (cohort status)

    @staticmethod
    def path(store: Store) -> Path:
        return store.root / "cohort" / "patients.json"

    @classmethod
    def load(cls, store: Store) -> Registry:
        """The registry; an older schema is migrated first (under the store lock)."""
        path = cls.path(store)
        if not path.exists():
            return cls()
        data = _read_registry(path)
        if data.get("schema_version") in (1, 2):
            with store.lock("cohort migrate"):
                data = _read_registry(path)  # another process may have migrated meanwhile
                if data.get("schema_version") in (1, 2):
                    _migrate(store, data)
                    data = _read_registry(path)
        if data.get("schema_version") != REGISTRY_SCHEMA_VERSION:
            raise StoreError(f"{path}: unsupported cohort schema version "
                             f"{data.get('schema_version')!r}")
        return cls._parse(path, data)

    @classmethod
    def lineages(cls, store: Store) -> set[str]:
        """The lineages some patient follows, without checking every entry (the run that
        follows does): at 10,000 patients a full load takes 0.4 s."""
        path = cls.path(store)
        if not path.exists():
            return set()
        data = _read_registry(path)
        if data.get("schema_version") != REGISTRY_SCHEMA_VERSION:
            return {lin for p in cls.load(store).patients.values() for lin in p.reviewed}
        return {lin for p in data["patients"].values() if isinstance(p, dict)
                for lin in (p.get("reviewed") or {})}

    @classmethod
    def _parse(cls, path: Path, data: dict[str, Any]) -> Registry:
        for pid, p in data["patients"].items():
            problem = check_fields(Patient, p)
            if problem:
                raise StoreError(f"{path}: malformed entry for patient {pid!r} ({problem})")
        runs = data.get("delivered_runs", [])
        if not isinstance(runs, list):
            raise StoreError(f"{path}: malformed cohort registry (delivered_runs)")
        next_number = data.get("next_number")
        if not isinstance(next_number, int) or next_number < 1:
            raise StoreError(f"{path}: malformed cohort registry (next_number)")
        engine_info = data.get("engine")
        reg = cls({pid: Patient(**p) for pid, p in data["patients"].items()},
                  [str(r) for r in runs], Catalog.from_json(data.get("index"), path),
                  next_number, engine_info if isinstance(engine_info, dict) else None)
        used = [n for p in reg.patients.values() for n in p.numbers]
        if len(used) != len(set(used)) or any(n >= next_number or n < 1 for n in used):
            raise StoreError(f"{path}: malformed cohort registry (patient numbers)")
        return reg

    def save(self, store: Store, commits: bool = False) -> None:
        """Write the registry; with `commits`, this write is the command's commit point."""
        write_json_atomic(self.path(store), {
            "schema_version": REGISTRY_SCHEMA_VERSION,
            "patients": {pid: asdict(p) for pid, p in sorted(self.patients.items())},
            "delivered_runs": self.delivered_runs[-1000:],
            "next_number": self.next_number,
            "engine": self.engine,
            "index": self.catalog.to_json()}, commits=commits)

    def get(self, patient_id: str) -> Patient:
        try:
            return self.patients[patient_id]
        except KeyError:
            raise StoreError(f"no patient {patient_id!r} in the cohort") from None

    def users_of(self, snapshot: str) -> list[str]:
        """Patients whose review state needs this snapshot (reviewed against it)."""
        return sorted(p.patient_id for p in self.patients.values()
                      if snapshot in p.reviewed.values())

    def allocate(self) -> int:
        self.next_number += 1
        return self.next_number - 1

    def live_numbers(self) -> list[int]:
        return sorted(n for p in self.patients.values() for n in p.numbers)

    def by_number(self) -> dict[int, Patient]:
        return {n: p for p in self.patients.values() for n in p.numbers}


def _read_registry(path: Path) -> dict[str, Any]:
    data = read_json(path, "cohort registry")
    if not isinstance(data, dict) or not isinstance(data.get("patients"), dict):
        raise StoreError(f"{path}: malformed cohort registry (no patients table)")
    return data


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------ migration
def legacy_index_dir(store: Store) -> Path:
    """Schemas 1 and 2: one Parquet file per patient here."""
    return store.root / "cohort" / "index"


def migrate(store: Store) -> bool:
    """`cohort migrate`: bring an older registry to the current schema; False when it
    already was."""
    path = Registry.path(store)
    if not path.exists():
        return False
    with store.lock("cohort migrate"):
        data = _read_registry(path)
        if data.get("schema_version") not in (1, 2):
            return False
        _migrate(store, data)
        return True


def _migrate(store: Store, data: dict[str, Any]) -> None:
    """One index file per patient -> the inverted index. Every old file is checked against
    the checksum its registry holds; the new files go in under new names and the registry is
    written once (kill -9 before that leaves the old store as it was); the old files are
    removed after."""
    path = Registry.path(store)
    if data.get("schema_version") == 1:
        data = _upgrade_v1(store, data)
    old_dir = legacy_index_dir(store)
    reg = Registry(delivered_runs=[str(r) for r in data.get("delivered_runs", [])])
    remove_orphans(store.root, reg.catalog)  # leftovers of an earlier, killed migration
    sources: list[tuple[str, int]] = []
    for pid, p in sorted(data["patients"].items()):
        if not isinstance(p, dict):
            raise StoreError(f"{path}: malformed entry for patient {pid!r}")
        p = dict(p)
        number = reg.allocate()
        sources.append((_checked_legacy(old_dir, pid, p.pop("index_file", None),
                                        p.pop("index_sha256", "")), number))
        previous = p.pop("previous_index_file", None)
        previous_sha = p.pop("previous_index_sha256", None)
        pending = p.pop("replacement_pending", []) or []
        p["previous"] = {}
        if previous and pending:
            earlier = reg.allocate()
            sources.append((_checked_legacy(old_dir, pid, previous, previous_sha or ""),
                            earlier))
            p["previous"] = {str(lineage): earlier for lineage in pending}
        p["number"] = number
        problem = check_fields(Patient, p)
        if problem:
            raise StoreError(f"{path}: malformed entry for patient {pid!r} ({problem})")
        reg.patients[pid] = Patient(**p)
    with store.workdir() as workdir, store.staging() as staging:
        if sources:
            con = db.connect(workdir)
            values = ", ".join(f"({db.quote(f)}, {n})" for f, n in sources)
            con.execute(f"""
                CREATE TEMP TABLE migrated AS
                SELECT i.key_chrom, i.pos, i.ref, i.alt, CAST(m.number AS BIGINT) AS patient,
                       i.zygosity, i.filter, i.chrom
                FROM read_parquet({db.quote_list([f for f, _ in sources])}, filename = true,
                                  union_by_name = true) i
                JOIN (VALUES {values}) m(file, number) ON m.file = i.filename""")
            staged = stage_rows(con, "migrated", staging / "migrated", reg.catalog.bin_size)
            con.close()
            entries = publish(store.root, staged, new_batch_id())
            reg.catalog.files.update({e.name: e for e in entries})
        reg.save(store)
    shutil.rmtree(old_dir, ignore_errors=True)
    log.info("migrated the cohort of %d patient(s) to the inverted index (schema %d)",
             len(reg.patients), REGISTRY_SCHEMA_VERSION)


def _checked_legacy(folder: Path, pid: str, name: object, sha: object) -> str:
    path = folder / str(name)
    if not name or not path.is_file():
        raise StoreError(f"{path}: index of patient {pid} is missing: the cohort cannot be "
                         "migrated (restore the file, or remove the patient)")
    if sha and sha256_file(path) != sha:
        raise StoreError(f"{path}: index of patient {pid} fails its checksum (corrupt or "
                         "edited): the cohort cannot be migrated")
    return str(path)


def _upgrade_v1(store: Store, data: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 kept one reviewed snapshot per patient and no index checksum: the lineage is
    derived from the snapshot."""
    patients = {}
    for pid, p in data["patients"].items():
        if not isinstance(p, dict):
            raise StoreError(f"{Registry.path(store)}: malformed entry for patient {pid!r}")
        p = dict(p)
        reviewed = str(p.pop("reviewed_snapshot", ""))
        try:
            lineage = store.get(reviewed).lineage
        except StoreError:
            kind = "clinvar-vcf" if reviewed.startswith("clinvar-GRCh") else "table"
            lineage = lineage_of(kind, reviewed, str(p.get("assembly")))
        p["reviewed"] = {lineage: reviewed}
        p.setdefault("index_sha256", "")
        patients[pid] = p
    return {**data, "patients": patients, "schema_version": 2}


# ------------------------------------------------------------------------------ cohort add
@dataclass
class AddOutcome:
    patient_id: str
    sample: str
    status: str  # added | unchanged | relocated | replaced | followed
    alleles: int


@dataclass
class _Staged:
    patient: Patient
    outcome: AddOutcome
    indexed: bool  # False: a registry change only


@dataclass(frozen=True)
class FileJob:
    """One VCF to index: which of its samples, under which patient numbers."""

    header: VcfHeader
    samples: list[tuple[int, int]]  # (sample column index, patient number)
    reference: str | None
    pass_only: bool


@dataclass(frozen=True)
class BatchTask:
    store_root: str
    jobs: list[FileJob]
    out: str  # this batch's staging folder
    bin_size: int
    threads: int = 0  # DuckDB threads (0: its default, every core of this process)


@dataclass
class BatchResult:
    staged: list[tuple[str, int, str]]  # (key_chrom, bin, file)
    alleles: dict[int, int]  # patient number -> carried alleles indexed
    lines: list[str]  # one per file, for the log
    warnings: list[str]


def cohort_add(store: Store, vcfs: Sequence[Path], *, samples: list[str] | None = None,
               patient_id: str | None = None, baseline: str | None = None,
               reference_path: Path | None = None, replace: bool = False,
               pass_only: bool = False, group: str | None = None,
               progress: Callable[[int, int], None] | None = None,
               choice: EngineChoice | None = None) -> list[AddOutcome]:
    """Register every sample of `vcfs` as a patient and index its carried alleles; all or
    nothing: one failing file registers none. `progress(done, total)` as batches finish."""
    with store.lock("cohort add"), store.workdir() as workdir:
        registry = Registry.load(store)
        base_snap = store.use(baseline) if baseline else None
        staged: list[_Staged] = []
        jobs: list[FileJob] = []
        seen: dict[str, Path] = {}
        for vcf in vcfs:
            job, items = _plan_file(store, registry, vcf, samples, patient_id, base_snap,
                                    reference_path, workdir, replace, pass_only, group)
            for item in items:
                pid = item.patient.patient_id
                if pid in seen:
                    raise UsageError(f"patient {pid!r} appears twice in this cohort add "
                                     f"({seen[pid]} and {vcf}); nothing was registered")
                seen[pid] = vcf
            staged += items
            if job is not None:
                jobs.append(job)
        _warn_not_applied(staged, base_snap, group)
        with store.staging() as staging, _publishing(store):
            entries, info = _index_jobs(store, registry, jobs, staging, choice or EngineChoice(),
                                        progress, staged)
            _commit(store, registry, staged, entries, info)
        remove_orphans(store.root, registry.catalog)
    return [s.outcome for s in staged]


def _index_jobs(store: Store, registry: Registry, jobs: list[FileJob], staging: Path,
                choice: EngineChoice, progress: Callable[[int, int], None] | None,
                staged: list[_Staged]) -> tuple[list[IndexFile], EngineInfo | None]:
    """Run the indexing batches (on the engine), then move their files into place."""
    if not jobs:
        return [], None
    work_bytes = sum(Path(j.header.path).stat().st_size for j in jobs)
    with engine(choice, len(jobs), store.root, work_bytes) as eng:
        in_process = eng.info.engine == "in-process"
        # On a cluster each worker process is one core's worth: one DuckDB thread each keeps
        # them from contending; in this process DuckDB may use every core.
        threads = 0 if in_process else 1
        tasks = [BatchTask(str(store.root), batch, str(staging / f"batch-{n}"),
                           registry.catalog.bin_size, threads)
                 for n, batch in enumerate(_batches(jobs, 1 if in_process else
                                                    eng.info.workers))]
        results = eng.map(index_batch, tasks, progress)
        info = eng.info
    alleles: dict[int, int] = {}
    for r in results:
        alleles.update(r.alleles)
        for line in r.lines:
            log.info("%s", line)
        for line in r.warnings:
            log.warning("%s", line)
    for s in staged:
        if s.indexed:
            s.patient.alleles = s.outcome.alleles = alleles.get(s.patient.number, 0)
    entries = publish(store.root, [(k, b, Path(f)) for r in results for k, b, f in r.staged],
                      new_batch_id())
    return entries, info


def _batches(jobs: list[FileJob], workers: int) -> list[list[FileJob]]:
    """Consecutive files in groups of about equal compressed size, each about BATCH_BYTES
    or less (unless one file is bigger). On a cluster, at least two groups per worker and a
    multiple of the workers, so that they finish together: measured on 1,000 exomes and 2
    workers, 5 batches (3 + 2) left one worker idle for a fifth of the run. Each group
    writes one file per bin, which sets when a bin gets compacted (MAX_FILES_PER_BIN)."""
    sizes = [max(1, Path(j.header.path).stat().st_size) for j in jobs]
    total = sum(sizes)
    n = -(-total // BATCH_BYTES)
    if workers > 1:
        n = max(n, 2 * workers)
        n = -(-n // workers) * workers
    n = max(1, min(n, len(jobs)))
    out: list[list[FileJob]] = [[] for _ in range(n)]
    done = 0
    for job, size in zip(jobs, sizes, strict=True):
        # the group holding the middle of this file's share of the bytes
        out[min(n - 1, (2 * done + size) * n // (2 * total))].append(job)
        done += size
    return [b for b in out if b]


def index_batch(task: BatchTask) -> BatchResult:
    """Index a batch of VCFs into `task.out` (a Dask task: module-level, picklable)."""
    from varreinterp.allocator import keep_freed_memory

    keep_freed_memory()
    root = Path(task.store_root)
    workdir = Path(tempfile.mkdtemp(prefix=f"work-{os.getpid()}-", dir=root / "tmp"))
    try:
        con = db.connect(workdir)
        if task.threads:
            con.execute(f"SET threads = {int(task.threads)}")
        con.execute("""CREATE TEMP TABLE rows_ (key_chrom VARCHAR, pos BIGINT, ref VARCHAR,
                       alt VARCHAR, patient BIGINT, zygosity VARCHAR, filter VARCHAR,
                       chrom VARCHAR)""")
        rows = _RowBuffer(con, "rows_")
        lines, warnings = [], []
        for job in task.jobs:
            reference = FastaReference(Path(job.reference), workdir) if job.reference else None
            calls = load(con, job.header, [i for i, _ in job.samples], reference,
                         job.pass_only)
            numbers = ", ".join(f"({db.quote(job.header.samples[i])}, {n})"
                                for i, n in job.samples)
            # A record repeated in the file would repeat a patient's row: collapsed (the
            # aggregate is only paid by a file that has such a repeat).
            carried = calls.carried if not _repeats_a_key(con, calls.allele) else (
                f"(SELECT {unique_calls_columns()} FROM {calls.carried} "
                "GROUP BY sample, key_chrom, pos, ref, alt)")
            select = f"""
                SELECT c.key_chrom, CAST(c.pos AS BIGINT) AS pos, c.ref, c.alt,
                       CAST(n.number AS BIGINT) AS patient, c.zygosity, c.filter, c.chrom
                FROM {carried} c
                JOIN (VALUES {numbers}) n(sample, number) ON n.sample = c.sample"""
            if len(job.samples) > 1:  # a joint-called file: millions of rows, kept in DuckDB
                rows.flush()
                con.execute(f"INSERT INTO rows_ {select}")
            else:
                rows.add(con.sql(select).to_arrow_table())
            lines.append(f"{job.header.path}: {calls.stats.records} records, "
                         f"{calls.stats.carried} carried calls")
            said = calls.stats.ref_mismatch_warning(reference.path if reference else None)
            if said:
                warnings.append(said)
            calls.drop()
        rows.flush()
        alleles = {int(n): int(c) for n, c in con.execute(
            "SELECT patient, count(*) FROM rows_ GROUP BY 1").fetchall()}
        staged = stage_rows(con, "rows_", Path(task.out), task.bin_size)
        con.close()
        return BatchResult([(k, b, str(f)) for k, b, f in staged], alleles, lines, warnings)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class _RowBuffer:
    """Each file's rows as Arrow, appended to the DuckDB table in large pieces. Measured: an
    INSERT of one exome's 40k rows from the join took 20 ms, and 90-200 ms whenever the table
    crossed a row group (47 ms/file on average); fetching them as Arrow takes 12 ms and one
    INSERT of millions of rows costs little per row."""

    FLUSH_ROWS = 2_000_000

    def __init__(self, con: Any, table: str) -> None:
        self.con, self.table = con, table
        self.parts: list[Any] = []
        self.rows = 0

    def add(self, part: Any) -> None:
        self.parts.append(part)
        self.rows += part.num_rows
        if self.rows >= self.FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.parts:
            return
        import pyarrow as pa

        pending = pa.concat_tables(self.parts)
        self.parts, self.rows = [], 0
        self.con.register("rows_pending_", pending)
        try:
            self.con.execute(f"INSERT INTO {self.table} SELECT * FROM rows_pending_")
        finally:
            self.con.unregister("rows_pending_")


def _repeats_a_key(con: Any, alleles: str) -> bool:
    repeated = db.scalar(con, f"""
        SELECT count(*) - count(DISTINCT (key_chrom, pos, ref, alt)) FROM {alleles}
        WHERE skip IS NULL""")
    return bool(repeated)


def _commit(store: Store, registry: Registry, staged: list[_Staged],
            entries: list[IndexFile], info: EngineInfo | None) -> None:
    """The registry names the new files and numbers (and the bins the new files crowded,
    compacted): the commit point, one write (inside `_publishing`)."""
    changed = [s for s in staged if s.outcome.status != "unchanged"]
    if not changed:
        return
    for s in changed:
        registry.patients[s.patient.patient_id] = s.patient
    registry.catalog.files.update({e.name: e for e in entries})
    if info is not None:
        registry.engine = info.to_json()
    _compact_into(store, registry, only_crowded=True)
    registry.save(store, commits=True)


@contextlib.contextmanager
def _publishing(store: Store) -> Iterator[None]:
    """Index files moved into place inside the block are named only by the registry the
    block saves. If the block fails or is interrupted anywhere (mid-publish, before or
    during the save), the files the registry on disk does not name are removed again, so
    the store is as it was; files it names (a save that happened) are kept."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            remove_orphans(store.root, Registry.load(store).catalog)
        raise


def _plan_file(store: Store, registry: Registry, vcf: Path, samples: list[str] | None,
               patient_id: str | None, base_snap: Snapshot | None,
               reference_path: Path | None, workdir: Path, replace: bool,
               pass_only: bool, group: str | None) -> tuple[FileJob | None, list[_Staged]]:
    """Check one file against the registry (build, ids, replacement) and give its samples
    their patient numbers; the file is read by the indexing task."""
    if not vcf.is_file():
        raise InputError("no such file", vcf)
    st = vcf.stat()
    sha = sha256_file(vcf)
    source = str(vcf.resolve())
    inputs = prepare_inputs([vcf], workdir, assembly=None, what="", samples=samples,
                            reference_path=reference_path)
    header = inputs.headers[0]
    assembly = _build_of(vcf, inputs, base_snap)
    baseline = base_snap  # the default is only looked for when a new patient needs one
    idx = select_samples(header, samples)
    if patient_id and len(idx) != 1:
        raise UsageError("--patient-id needs exactly one sample (use --sample)")
    staged: list[_Staged] = []
    todo: list[tuple[int, int]] = []
    for i in idx:
        sample = header.samples[i]
        pid = patient_id or sample
        old = registry.patients.get(pid)
        if old is not None and old.assembly != assembly:
            raise StoreError(f"patient {pid!r} is registered on {old.assembly} (from "
                             f"{old.source}); {vcf} is {assembly}: a patient never changes "
                             "build (register it under another --patient-id)")
        if old is not None and old.source_sha256 == sha and old.sample == sample:
            staged.append(_same_file(old, source, st, base_snap))
            continue
        if old is not None and not replace:
            raise StoreError(f"patient {pid!r} is already registered from {old.source}, a "
                             f"different file; if {vcf} is a new sequencing of the same "
                             "person, use --replace (its newly carried alleles are then "
                             "reported once); if it is someone else with the same sample "
                             "name, register it under another --patient-id (with --sample) "
                             "or rename the sample (bcftools reheader -s)")
        patient = Patient(
            patient_id=pid, sample=sample, source=source, source_sha256=sha,
            source_size=st.st_size, source_mtime=st.st_mtime, assembly=assembly,
            baseline_snapshot="", alleles=0, number=registry.allocate(), added_at=now(),
            pass_only=pass_only, group=group)
        status = "added"
        if old is None:
            baseline = baseline or _default_baseline(store, assembly)
            patient.baseline_snapshot = baseline.name
            patient.reviewed = {baseline.lineage: baseline.name}
        else:
            status = "replaced"
            patient.added_at = old.added_at
            patient.reviewed = dict(old.reviewed)
            patient.reviewed_at = old.reviewed_at
            patient.group = group or old.group
            patient.baseline_snapshot = old.baseline_snapshot
            # Per lineage, the rows last delivered there stay live until the replacement's
            # effect is reported on it; replaced again before that, the delivered state of a
            # lineage still pending is the older one.
            patient.previous = {lineage: old.previous.get(lineage, old.number)
                                for lineage in patient.reviewed}
            if base_snap is not None and not old.follows(base_snap.lineage):
                # Nothing was delivered on the new lineage yet, so it has no replacement to
                # report: the new calls are reviewed against the baseline from now on.
                patient.reviewed[base_snap.lineage] = base_snap.name
                log.info("patient %s: now also follows %s from %s", pid, base_snap.lineage,
                         base_snap.name)
            elif base_snap is not None and old.reviewed[base_snap.lineage] != base_snap.name:
                # Moving its reviewed release would skip or repeat changes the lab may not
                # have seen: the replacement keeps it, and says so.
                log.warning("--baseline %s was not applied to patient %s (replaced): it keeps "
                            "what it was reported against on %s (%s); to restart it from %s, "
                            "`cohort remove` it and add it again", base_snap.name, pid,
                            base_snap.lineage, old.reviewed[base_snap.lineage], base_snap.name)
        staged.append(_Staged(patient, AddOutcome(pid, sample, status, 0), True))
        todo.append((i, patient.number))
    job = FileJob(header, todo, str(reference_path) if reference_path else None,
                  pass_only) if todo else None
    return job, staged


def _build_of(vcf: Path, inputs: PreparedInputs, base_snap: Snapshot | None) -> str:
    found = inputs.headers[0].assembly()
    if base_snap is not None:
        if found and found.value != base_snap.manifest.assembly:
            raise InputError(f"genome build mismatch: the VCF is {found.value} but baseline "
                             f"snapshot {base_snap.name} is {base_snap.manifest.assembly}", vcf)
        return base_snap.manifest.assembly
    if found is None:
        raise UsageError(f"{vcf}: the header does not tell the genome build; give --baseline")
    return found.value


def _default_baseline(store: Store, assembly: str) -> Snapshot:
    lineages = sorted({s.lineage for s in store.snapshots() if s.manifest.assembly == assembly})
    if not lineages:
        raise StoreError(f"no stored snapshot of assembly {assembly} to use as baseline")
    if len(lineages) > 1:
        raise UsageError(f"the store holds several {assembly} lineages ({', '.join(lineages)}):"
                         " choose the one the patient was reported against with --baseline")
    newest = store.newest(assembly, lineages[0])
    assert newest is not None
    return store.use(newest.name)


def _warn_not_applied(staged: list[_Staged], base_snap: Snapshot | None,
                      group: str | None) -> None:
    """--baseline and --group set a patient's state when it is registered. A patient added
    again from its own file keeps both (a daily `cohort add dir/*.vcf.gz --baseline X` must
    not rewind anyone): say so once for those the options would have changed, instead of
    exiting 0 as if they had been applied."""
    kept = [s.patient for s in staged if s.outcome.status in ("unchanged", "relocated")]
    if base_snap is not None:
        rewound = [p for p in kept
                   if p.reviewed.get(base_snap.lineage, base_snap.name) != base_snap.name]
        if rewound:
            p = rewound[0]
            log.warning("--baseline %s was not applied to %d patient(s) already registered "
                        "from the same file (e.g. %s, reported up to %s): a registered "
                        "patient keeps what it was reported against; to restart one from "
                        "%s, `cohort remove` it and add it again", base_snap.name,
                        len(rewound), p.patient_id, p.reviewed[base_snap.lineage],
                        base_snap.name)
    if group is not None:
        regrouped = [p for p in kept if p.group != group]
        if regrouped:
            p = regrouped[0]
            log.warning("--group %s was not applied to %d patient(s) already registered from "
                        "the same file (e.g. %s, in %s): to move one, `cohort remove` it and "
                        "add it again with --group", group, len(regrouped), p.patient_id,
                        f"group {p.group}" if p.group else "no group")


def _same_file(old: Patient, source: str, st: os.stat_result,
               base_snap: Snapshot | None) -> _Staged:
    """The file is already registered: re-point a moved file, follow a new lineage."""
    new = Patient(**asdict(old))
    status = "unchanged"
    if (old.source, old.source_size, old.source_mtime) != (source, st.st_size, st.st_mtime):
        new.source, new.source_size, new.source_mtime = source, st.st_size, st.st_mtime
        status = "relocated"
    if base_snap is not None and not old.follows(base_snap.lineage):
        new.reviewed = {**old.reviewed, base_snap.lineage: base_snap.name}
        status = "followed"
    return _Staged(new, AddOutcome(old.patient_id, old.sample, status, old.alleles), False)


# ------------------------------------------------------------------------------ compaction
def compact(store: Store, registry: Registry, only_crowded: bool,
            choice: EngineChoice | None = None) -> int:
    """`cohort compact`: merge each bin's files into one, keeping only live rows (of patients
    the registry names); with `only_crowded`, only bins over MAX_FILES_PER_BIN files. One
    commit; the old files are removed after it. Returns the number of bins rewritten."""
    with _publishing(store):
        rewritten = _compact_into(store, registry, only_crowded, choice)
        if not rewritten:
            return 0
        registry.save(store, commits=True)
    remove_orphans(store.root, registry.catalog)
    return rewritten


def _compact_into(store: Store, registry: Registry, only_crowded: bool,
                  choice: EngineChoice | None = None) -> int:
    """Rewrite the bins to compact (see `compact`) into new files placed beside the old ones,
    and point the registry's catalog (in memory) at them; the caller saves the registry
    (inside `_publishing`). A bin left with no live row loses its files. Returns the number
    of bins rewritten."""
    import numpy as np

    by_bin = registry.catalog.by_bin()
    targets = [files for files in by_bin.values()
               if not only_crowded or len(files) > MAX_FILES_PER_BIN]
    if not targets:
        return 0
    live = np.asarray(registry.live_numbers(), np.int64)
    work = sum(f.size for files in targets for f in files)
    with store.staging() as staging, \
            engine(choice or EngineChoice(), len(targets), store.root, work) as eng:
        tasks = [CompactTask(str(store.root), files, live, str(staging / f"bin-{n}"))
                 for n, files in enumerate(targets)]
        results = eng.map(compact_bin, tasks)
        entries = publish(store.root, [(k, b, Path(f)) for r in results for k, b, f in r],
                          new_batch_id())
    for files in targets:
        for f in files:
            del registry.catalog.files[f.name]
            registry.catalog.files.pop(f.keys_name, None)
    registry.catalog.files.update({e.name: e for e in entries})
    if only_crowded:
        log.info("cohort index: compacted %d bin(s)", len(targets))
    return len(targets)


def cohort_remove(store: Store, patient_id: str) -> None:
    """Forget a patient and remove its rows from every bin (a compaction, in the same commit):
    no genotype of a removed patient stays in the store."""
    with store.lock("cohort remove"):
        registry = Registry.load(store)
        registry.get(patient_id)
        del registry.patients[patient_id]
        with _publishing(store):
            _compact_into(store, registry, only_crowded=False)
            registry.save(store, commits=True)
        remove_orphans(store.root, registry.catalog)
