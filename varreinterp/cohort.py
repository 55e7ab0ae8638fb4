"""The cohort: patients registered once, their carried normalized alleles in an index (read by
the nightly `reanalyze`, see reanalyze.py).

Layout under the store::

    cohort/patients.json         registry (schema-versioned): one entry per patient
    cohort/index/<key>.parquet   one file per patient: chrom, key_chrom, pos, ref, alt, zygosity
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
from varreinterp.errors import InputError, StoreError, UsageError
from varreinterp.matching import PreparedInputs, prepare_inputs
from varreinterp.patient_vcf import load, select_samples
from varreinterp.store import Snapshot, Store, check_fields, sha256_file

log = logging.getLogger("varreinterp")

REGISTRY_SCHEMA_VERSION = 1


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
            for pid, p in data["patients"].items():
                problem = check_fields(Patient, p)
                if problem:
                    raise StoreError(f"{path}: malformed entry for patient {pid!r} ({problem})")
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


def index_dir(store: Store) -> Path:
    return store.root / "cohort" / "index"


def _index_name(patient_id: str) -> str:
    return hashlib.sha256(patient_id.encode()).hexdigest()[:24] + ".parquet"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------ cohort add
@dataclass
class AddOutcome:
    patient_id: str
    sample: str
    status: str  # added | unchanged | re-ingested
    alleles: int


def cohort_add(store: Store, vcfs: Sequence[Path], *, samples: list[str] | None = None,
               patient_id: str | None = None, baseline: str | None = None,
               reference_path: Path | None = None,
               progress: Callable[[int, int], None] | None = None) -> list[AddOutcome]:
    """Register every sample of `vcfs` as a patient and index its carried alleles;
    `progress(done, total)` is called after each file."""
    outcomes: list[AddOutcome] = []
    with store.lock("cohort add"), store.workdir() as workdir:
        registry = Registry.load(store)
        base_snap = store.get(baseline) if baseline else None
        for n, vcf in enumerate(vcfs, start=1):
            outcomes += _add_one(store, registry, vcf, samples, patient_id, base_snap,
                                 reference_path, workdir)
            if progress:
                progress(n, len(vcfs))
    return outcomes


def _add_one(store: Store, registry: Registry, vcf: Path, samples: list[str] | None,
             patient_id: str | None, base_snap: Snapshot | None,
             reference_path: Path | None, workdir: Path) -> list[AddOutcome]:
    if not vcf.is_file():
        raise InputError("no such file", vcf)
    st = vcf.stat()
    sha = sha256_file(vcf)
    source = str(vcf.resolve())
    inputs = prepare_inputs([vcf], workdir, assembly=None, what="", samples=samples,
                            reference_path=reference_path)
    return _add_prepared(store, registry, vcf, inputs, samples, patient_id, base_snap,
                         sha, source, st, workdir)


def _add_prepared(store: Store, registry: Registry, vcf: Path, inputs: PreparedInputs,
                  samples: list[str] | None, patient_id: str | None,
                  base_snap: Snapshot | None, sha: str, source: str,
                  st: os.stat_result, workdir: Path) -> list[AddOutcome]:
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
    con = db.connect(workdir)
    target_dir = index_dir(store)
    target_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with store.staging() as staging:
        calls = load(con, header, [i for i, *_ in todo], inputs.reference)
        log.info("%s: %d records, %d carried calls", vcf, calls.stats.records,
                 calls.stats.carried)
        con.execute(f"CREATE OR REPLACE TEMP TABLE carried_all AS SELECT * FROM {calls.carried}")
        staged = []
        for _, sample, pid, old in todo:
            name = _index_name(pid)
            out = staging / name
            con.execute(f"""
                COPY (SELECT min(chrom) AS chrom, key_chrom, pos, ref, alt,
                             string_agg(DISTINCT zygosity, ',' ORDER BY zygosity) AS zygosity
                      FROM carried_all WHERE sample = ?
                      GROUP BY key_chrom, pos, ref, alt ORDER BY key_chrom, pos, ref, alt)
                TO {db.quote(str(out))} (FORMAT parquet, COMPRESSION zstd)
            """, [sample])
            n = db.count(con, db.parquet(out))
            staged.append((sample, pid, old, name, n))
        con.close()
        for sample, pid, old, name, n in staged:
            os.replace(staging / name, target_dir / name)
            # A changed file keeps the snapshot the patient was last reported against,
            # unless --baseline says otherwise.
            reviewed = base_snap.name if base_snap else (
                old.reviewed_snapshot if old else baseline.name)
            registry.patients[pid] = Patient(
                patient_id=pid, sample=sample, source=source, source_sha256=sha,
                source_size=st.st_size, source_mtime=st.st_mtime, assembly=assembly,
                baseline_snapshot=baseline.name,
                reviewed_snapshot=reviewed,
                alleles=int(n), index_file=name, added_at=now())
            outcomes.append(AddOutcome(pid, sample, "re-ingested" if old else "added", int(n)))
        registry.save(store)
    return outcomes


def cohort_remove(store: Store, patient_id: str) -> None:
    with store.lock("cohort remove"):
        registry = Registry.load(store)
        patient = registry.get(patient_id)
        del registry.patients[patient_id]
        registry.save(store)
        (index_dir(store) / patient.index_file).unlink(missing_ok=True)


