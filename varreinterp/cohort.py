"""The cohort: patients registered once, their carried normalized alleles in an index (read by
the nightly `reanalyze`, see reanalyze.py).

A patient is an id plus a build: re-adding an id with another file is refused unless
`--replace`, and another build is always refused. Each patient follows the lineages it has a
baseline in (`clinvar/GRCh38`, a lab table's...), each with the snapshot it was last reviewed
against. A replaced VCF keeps the previous index until the next reanalysis has delivered what
the replacement changed (newly carried and no longer carried alleles).

Layout under the store::

    cohort/patients.json              registry (schema-versioned): one entry per patient
    cohort/index/<id>-<sha>.parquet   a patient's carried alleles: chrom, key_chrom, pos, ref,
                                      alt, zygosity, filter (content-addressed: a new file never
                                      overwrites one the registry still names)

A `cohort add` of many files is all or nothing: every index is staged first, then the registry
is written once (the commit point), then superseded files are removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from varreinterp import db
from varreinterp.atomic import write_json_atomic
from varreinterp.errors import EnvironmentIOError, InputError, StoreError, UsageError
from varreinterp.matching import PreparedInputs, prepare_inputs, unique_calls_columns
from varreinterp.patient_vcf import load, select_samples
from varreinterp.store import Snapshot, Store, check_fields, lineage_of, sha256_file

log = logging.getLogger("varreinterp")

REGISTRY_SCHEMA_VERSION = 2


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
    index_file: str
    added_at: str
    # lineage -> the snapshot this patient was last reviewed (reported) against
    reviewed: dict[str, str] = field(default_factory=dict)
    index_sha256: str = ""
    reviewed_at: str | None = None
    # A replaced VCF's index, kept until every lineage in `replacement_pending` has had its
    # newly / no longer carried alleles delivered.
    previous_index_file: str | None = None
    previous_index_sha256: str | None = None
    replacement_pending: list[str] = field(default_factory=list)
    pass_only: bool = False
    group: str | None = None

    def follows(self, lineage: str) -> bool:
        return lineage in self.reviewed


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
        except OSError as exc:
            raise EnvironmentIOError.from_os_error(exc, path) from exc
        except ValueError as exc:
            raise StoreError(f"{path}: unreadable cohort registry ({exc})") from exc
        if not isinstance(data, dict) or not isinstance(data.get("patients"), dict):
            raise StoreError(f"{path}: malformed cohort registry (no patients table)")
        version = data.get("schema_version")
        if version == 1:
            data = _upgrade_v1(store, data)
        elif version != REGISTRY_SCHEMA_VERSION:
            raise StoreError(f"{path}: unsupported cohort schema version {version!r}")
        for pid, p in data["patients"].items():
            problem = check_fields(Patient, p)
            if problem:
                raise StoreError(f"{path}: malformed entry for patient {pid!r} ({problem})")
        runs = data.get("delivered_runs", [])
        if not isinstance(runs, list):
            raise StoreError(f"{path}: malformed cohort registry (delivered_runs)")
        return cls({pid: Patient(**p) for pid, p in data["patients"].items()},
                   [str(r) for r in runs])

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

    def users_of(self, snapshot: str) -> list[str]:
        """Patients whose review state needs this snapshot (reviewed against it)."""
        return sorted(p.patient_id for p in self.patients.values()
                      if snapshot in p.reviewed.values())


def _upgrade_v1(store: Store, data: dict[str, object]) -> dict[str, object]:
    """Schema 1 kept one reviewed snapshot per patient and no index checksum: both are
    derived here (the lineage from the snapshot, the checksum from the file as it is now)."""
    patients = {}
    assert isinstance(data["patients"], dict)
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
        index = index_dir(store) / str(p.get("index_file"))
        p["index_sha256"] = sha256_file(index) if index.is_file() else ""
        patients[pid] = p
    return {**data, "patients": patients, "schema_version": REGISTRY_SCHEMA_VERSION}


def index_dir(store: Store) -> Path:
    return store.root / "cohort" / "index"


def _index_name(patient_id: str, sha: str) -> str:
    return f"{hashlib.sha256(patient_id.encode()).hexdigest()[:24]}-{sha[:16]}.parquet"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def verified_index(store: Store, patient: Patient, previous: bool = False) -> Path:
    """A patient's index file, checked against the checksum the registry holds; StoreError
    (naming the file) when it is missing or differs."""
    name = patient.previous_index_file if previous else patient.index_file
    expected = patient.previous_index_sha256 if previous else patient.index_sha256
    path = index_dir(store) / str(name)
    if not path.is_file():
        raise StoreError(f"{path}: index of patient {patient.patient_id} is missing")
    if expected and sha256_file(path) != expected:
        raise StoreError(f"{path}: index of patient {patient.patient_id} fails its checksum "
                         "(corrupt or edited)")
    return path


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
    staged_index: Path | None  # None: registry change only
    outcome: AddOutcome
    superseded: list[str] = field(default_factory=list)  # index files to remove after commit


def cohort_add(store: Store, vcfs: Sequence[Path], *, samples: list[str] | None = None,
               patient_id: str | None = None, baseline: str | None = None,
               reference_path: Path | None = None, replace: bool = False,
               pass_only: bool = False, group: str | None = None,
               progress: Callable[[int, int], None] | None = None) -> list[AddOutcome]:
    """Register every sample of `vcfs` as a patient and index its carried alleles; all or
    nothing: one failing file registers none. `progress(done, total)` after each file."""
    with store.lock("cohort add"), store.workdir() as workdir:
        registry = Registry.load(store)
        base_snap = store.use(baseline) if baseline else None
        staged: list[_Staged] = []
        seen: dict[str, Path] = {}
        with store.staging() as staging:
            for n, vcf in enumerate(vcfs, start=1):
                for item in _stage_file(store, registry, vcf, samples, patient_id, base_snap,
                                        reference_path, workdir, staging, replace, pass_only,
                                        group):
                    pid = item.patient.patient_id
                    if pid in seen:
                        raise UsageError(f"patient {pid!r} appears twice in this cohort add "
                                         f"({seen[pid]} and {vcf}); nothing was registered")
                    seen[pid] = vcf
                    staged.append(item)
                if progress:
                    progress(n, len(vcfs))
            _commit(store, registry, staged)
        _remove_orphans(store, registry)
    return [s.outcome for s in staged]


def _commit(store: Store, registry: Registry, staged: list[_Staged]) -> None:
    """Index files into place (new names: nothing the registry names is touched), then the
    registry (the commit point), then the superseded files."""
    folder = index_dir(store)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    changed = [s for s in staged if s.outcome.status != "unchanged"]
    if not changed:
        return
    moved: list[Path] = []
    try:
        for s in changed:
            if s.staged_index is not None:
                os.replace(s.staged_index, folder / s.patient.index_file)
                moved.append(folder / s.patient.index_file)
        for s in changed:
            registry.patients[s.patient.patient_id] = s.patient
        registry.save(store)
    except BaseException:
        for path in moved:  # not committed: the registry names none of them
            path.unlink(missing_ok=True)
        raise
    for s in changed:
        for name in s.superseded:
            (folder / name).unlink(missing_ok=True)


def _remove_orphans(store: Store, registry: Registry) -> None:
    """Index files no patient names (left by a run killed between staging and commit)."""
    folder = index_dir(store)
    if not folder.is_dir():
        return
    named = {p.index_file for p in registry.patients.values()} | {
        p.previous_index_file for p in registry.patients.values() if p.previous_index_file}
    for path in folder.iterdir():
        if path.name not in named:
            path.unlink(missing_ok=True)


def _stage_file(store: Store, registry: Registry, vcf: Path, samples: list[str] | None,
                patient_id: str | None, base_snap: Snapshot | None,
                reference_path: Path | None, workdir: Path, staging: Path, replace: bool,
                pass_only: bool, group: str | None) -> list[_Staged]:
    if not vcf.is_file():
        raise InputError("no such file", vcf)
    st = vcf.stat()
    sha = sha256_file(vcf)
    source = str(vcf.resolve())
    inputs = prepare_inputs([vcf], workdir, assembly=None, what="", samples=samples,
                            reference_path=reference_path)
    header = inputs.headers[0]
    assembly = _build_of(vcf, inputs, base_snap)
    baseline = base_snap or _default_baseline(store, assembly)
    idx = select_samples(header, samples)
    if patient_id and len(idx) != 1:
        raise UsageError("--patient-id needs exactly one sample (use --sample)")
    staged: list[_Staged] = []
    todo: list[tuple[int, str, str, Patient | None]] = []
    for i in idx:
        sample = header.samples[i]
        pid = patient_id or sample
        old = registry.patients.get(pid)
        if old is not None and old.assembly != assembly:
            raise StoreError(f"patient {pid!r} is registered on {old.assembly} (from "
                             f"{old.source}); {vcf} is {assembly}: a patient never changes "
                             "build (register it under another --patient-id)")
        if old is not None and old.source_sha256 == sha and old.sample == sample:
            staged.append(_same_file(old, source, st, baseline, base_snap))
            continue
        if old is not None and not replace:
            raise StoreError(f"patient {pid!r} is already registered from {old.source}, a "
                             f"different file; use --replace to re-register it from {vcf} "
                             "(its newly carried alleles are then reported once)")
        todo.append((i, sample, pid, old))
    if todo:
        staged += _index_samples(store, vcf, inputs, todo, workdir, staging, sha, source, st,
                                 assembly, baseline, pass_only, group)
    return staged


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


def _same_file(old: Patient, source: str, st: os.stat_result, baseline: Snapshot,
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
    return _Staged(new, None, AddOutcome(old.patient_id, old.sample, status, old.alleles))


def _index_samples(store: Store, vcf: Path, inputs: PreparedInputs,
                   todo: list[tuple[int, str, str, Patient | None]], workdir: Path,
                   staging: Path, sha: str, source: str, st: os.stat_result, assembly: str,
                   baseline: Snapshot, pass_only: bool, group: str | None) -> list[_Staged]:
    con = db.connect(workdir)
    header = inputs.headers[0]
    calls = load(con, header, [i for i, *_ in todo], inputs.reference, pass_only)
    log.info("%s: %d records, %d carried calls", vcf, calls.stats.records, calls.stats.carried)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE carried_all AS
                    SELECT {unique_calls_columns()} FROM {calls.carried}
                    GROUP BY sample, key_chrom, pos, ref, alt""")
    out: list[_Staged] = []
    for _, sample, pid, old in todo:
        tmp = staging / f"{len(out)}.parquet"
        with db.writing(tmp):
            con.execute(f"""
                COPY (SELECT chrom, key_chrom, pos, ref, alt, zygosity, filter
                      FROM carried_all WHERE sample = ?
                      ORDER BY key_chrom, pos, ref, alt)
                TO {db.quote(str(tmp))} (FORMAT parquet, COMPRESSION zstd)
            """, [sample])
        n = db.count(con, db.parquet(tmp))
        index_sha = sha256_file(tmp)
        name = _index_name(pid, index_sha)
        staged_path = staging / name
        os.replace(tmp, staged_path)
        patient = Patient(
            patient_id=pid, sample=sample, source=source, source_sha256=sha,
            source_size=st.st_size, source_mtime=st.st_mtime, assembly=assembly,
            baseline_snapshot=baseline.name, alleles=int(n), index_file=name,
            index_sha256=index_sha, added_at=now(), reviewed={baseline.lineage: baseline.name},
            pass_only=pass_only, group=group)
        superseded: list[str] = []
        status = "added"
        if old is not None:
            status = "replaced"
            patient.added_at = old.added_at
            patient.reviewed = dict(old.reviewed)
            patient.reviewed_at = old.reviewed_at
            patient.group = group or old.group
            patient.baseline_snapshot = old.baseline_snapshot
            if old.previous_index_file is None:
                # The index last delivered stays until the replacement's effect is reported.
                patient.previous_index_file = old.index_file
                patient.previous_index_sha256 = old.index_sha256
            else:  # replaced again before a reanalysis: the delivered state is still older
                patient.previous_index_file = old.previous_index_file
                patient.previous_index_sha256 = old.previous_index_sha256
                superseded.append(old.index_file)
            patient.replacement_pending = sorted(patient.reviewed)
        out.append(_Staged(patient, staged_path,
                           AddOutcome(pid, sample, status, int(n)), superseded))
    con.close()
    return out


def cohort_remove(store: Store, patient_id: str) -> None:
    """Forget a patient and delete its index files."""
    with store.lock("cohort remove"):
        registry = Registry.load(store)
        patient = registry.get(patient_id)
        del registry.patients[patient_id]
        registry.save(store)
        for name in (patient.index_file, patient.previous_index_file):
            if name:
                (index_dir(store) / name).unlink(missing_ok=True)
