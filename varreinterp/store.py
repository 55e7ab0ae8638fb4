"""The local snapshot store: immutable, checksummed snapshots plus (later) the cohort index.

Layout::

    STORE/store.json                      schema version of the store itself
    STORE/lock                            flock()ed by writers; holds the holder's pid and start
    STORE/snapshots/NAME/manifest.json    SnapshotManifest, self-checksummed
    STORE/snapshots/NAME/variants.parquet one row per classified allele
    STORE/tmp/                            staging; anything here is an unfinished write

Every write is staged under tmp/ and renamed into place, so a killed import leaves the store
exactly as it was.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from varreinterp.atomic import work_committed, write_json_atomic
from varreinterp.errors import (
    EnvironmentIOError,
    LockHeldError,
    SnapshotNotFoundError,
    StoreError,
    store_os_error,
)

log = logging.getLogger("varreinterp")

STORE_SCHEMA_VERSION = 1
STORE_FILE = "store.json"
# The names of what this tool puts in STORE/tmp/ (store.workdir and cohort.index_batch:
# work-<pid>-; staging: stage-; remove: trash-; engine.check_store: engine-probe-; reports:
# .report.stage-<pid>-, and older versions' .<folder>.stage- and .trash-). Only these are
# cleaned: a --store pointed at someone's folder must not lose their tmp/.
_TMP_NAMES = re.compile(r"^(?:work-|stage-|trash-|engine-probe-|\.trash-|\..+\.stage-)")
MANIFEST_SCHEMA_VERSION = 2
VARIANTS_FILE = "variants.parquet"
MANIFEST_FILE = "manifest.json"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_json(path: Path, what: str) -> Any:
    """A JSON file of the store: an OS error is the environment's (exit 74), unreadable
    content is the store's (exit 4), named as `what`."""
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise EnvironmentIOError.from_os_error(exc, path) from exc
    except ValueError as exc:
        raise StoreError(f"{path}: unreadable {what} ({exc})") from exc


# Columns of variants.parquet in schema v1 (before hgvs); later columns are read as NULL.
V1_COLUMNS = [
    "chrom", "pos", "ref", "alt", "classification", "tier", "stars", "review_status",
    "raw_classification", "raw_review_status", "conflicts", "gene", "conditions", "consequence",
    "variation_id", "allele_id", "last_evaluated",
    "onc_classification", "onc_review_status", "sci_classification", "sci_review_status",
]


def lineage_of(source_kind: str, name: str, assembly: str, table: str | None = None) -> str:
    """The series a snapshot belongs to: ClinVar VCF releases, variant_summary releases, or one
    lab table's releases, each per build: `clinvar/GRCh38`, `macarthur/GRCh38`. A lab table's
    series is `table`, its mapping's `[source] name`: a snapshot imported under a `--name` of
    the lab's own making stays in it. Without `table` (a manifest written before lineages were
    stored, a registry of schema 1), it is guessed from the snapshot's name."""
    base = {"clinvar-vcf": "clinvar", "variant-summary": "clinvar-summary"}.get(source_kind)
    if base is None:
        base = table or (name.split(f"-{assembly}-")[0] if f"-{assembly}-" in name else name)
    return f"{base}/{assembly}"


def release_order(manifest: SnapshotManifest) -> tuple[str, tuple[int, int], str]:
    """The sort key of a release within its lineage: release date, then import time, then
    name. A corrected reissue carries the date of the release it replaces; imported later, it
    is the newer one whatever its name (ordering by name made `latest` and reanalyze depend on
    how a `--name` happened to sort). An import time that cannot be read (a manifest edited by
    hand) counts as the earliest of its date; ties (older manifests stamp whole seconds) fall
    back to the name, so the order is always the same."""
    return (manifest.release_date or "", _import_time(manifest.imported_at), manifest.name)


def _import_time(stamp: str) -> tuple[int, int]:
    """(1, microseconds since 1970) of an `imported_at` stamp, (0, 0) when it is not one.
    Parsed, not compared as text: `...:05Z` (whole seconds, older manifests) sorts after
    `...:05.500000Z` as a string."""
    try:
        when = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return (0, 0)
    if when.tzinfo is None:  # written in UTC, whether or not it says so
        when = when.replace(tzinfo=UTC)
    return (1, (when - _EPOCH) // timedelta(microseconds=1))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class SnapshotManifest:
    name: str
    source_kind: str
    source_file: str
    source_sha256: str
    release_date: str | None
    assembly: str
    records: int
    tiers: dict[str, int]
    stars: dict[str, int]
    skipped: dict[str, int]
    unknown_terms: dict[str, int]
    tool_version: str
    imported_at: str
    files: dict[str, str]
    mapping: dict[str, str] | None = None
    schema_version: int = MANIFEST_SCHEMA_VERSION
    lineage: str = ""
    contigs: list[str] | None = None  # contig keys with at least one record (None: unknown)
    columns: list[str] = field(default_factory=list)  # of variants.parquet
    # Why this release looks partial (record count or contigs fell against the previous
    # release of its lineage), or None. Commands refuse a suspect target unless told.
    suspect: str | None = None
    manifest_sha256: str = field(default="", compare=False)

    def _digest(self) -> str:
        body = asdict(self)
        body.pop("manifest_sha256")
        return _digest_of(body)

    def seal(self) -> SnapshotManifest:
        self.manifest_sha256 = self._digest()
        return self

    def is_sealed(self) -> bool:
        """Whether the self-checksum holds (over the fields as stored, for a loaded one)."""
        stored = getattr(self, "_stored_sealed", None)
        return stored if stored is not None else self.manifest_sha256 == self._digest()

    @classmethod
    def load(cls, path: Path) -> SnapshotManifest:
        """Read, type-check and upgrade a manifest. Whether its self-checksum holds is
        computed over the fields as stored (a v1 manifest was sealed without v2's fields)."""
        data = read_json(path, "snapshot manifest")
        version = data.get("schema_version") if isinstance(data, dict) else None
        if version not in (1, MANIFEST_SCHEMA_VERSION):
            raise StoreError(f"{path}: unsupported manifest schema version {version!r}")
        problem = check_fields(cls, data)
        if problem:
            raise StoreError(f"{path}: malformed snapshot manifest ({problem})")
        stored = {k: v for k, v in data.items() if k != "manifest_sha256"}
        sealed = data.get("manifest_sha256") == _digest_of(stored)
        manifest = cls(**data)
        if version == 1:  # step-by-step upgrade, in memory (the file is immutable)
            manifest.columns = list(V1_COLUMNS)
        if not manifest.lineage:
            manifest.lineage = lineage_of(manifest.source_kind, manifest.name, manifest.assembly)
        object.__setattr__(manifest, "_stored_sealed", sealed)
        return manifest

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _digest_of(body: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Snapshot:
    manifest: SnapshotManifest
    path: Path

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def lineage(self) -> str:
        return self.manifest.lineage

    def column(self, name: str, alias: str | None = None) -> str:
        """SQL for a variants.parquet column; NULL for one this snapshot's schema predates."""
        has = name in self.manifest.columns
        return f"{name}{f' AS {alias}' if alias else ''}" if has else \
            f"CAST(NULL AS VARCHAR) AS {alias or name}"

    @property
    def variants(self) -> Path:
        return self.path / VARIANTS_FILE


@dataclass(frozen=True)
class VerifyProblem:
    snapshot: str
    problem: str


class Store:
    _warned = False  # the readable-store warning is given once per process

    def __init__(self, root: Path):
        self.root = root
        self._verified: set[tuple[str, tuple[tuple[int, int, int], ...]]] = set()
        # Manifests read in this process, by name and the file's stat: a nightly run asks
        # for the same few snapshots once per patient (10,000 reads took 3 s).
        self._manifests: dict[tuple[str, tuple[int, int, int]], SnapshotManifest] = {}
        self._locked = False  # this object holds the lock: a nested lock() is a no-op

    @property
    def snapshots_dir(self) -> Path:
        return self.root / "snapshots"

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

    # ---------------------------------------------------------------- creation and locking
    def ensure(self) -> None:
        """Create the store with owner-only permissions (it holds patient data). An existing
        directory keeps its mode (a shared 1777 folder must not become private to us); when
        others can read it, a warning says so once, since everything we create inside is
        owner-only anyway. An existing folder holding anything else but no store.json is not
        ours: refused, since a writer cleans tmp/ and rewrites lock (exit 4)."""
        try:
            self.refuse_foreign()
            created = not self.root.exists()
            for d in (self.root, self.snapshots_dir, self.tmp_dir):
                d.mkdir(parents=True, exist_ok=True, mode=0o700)
            if created:
                os.chmod(self.root, 0o700)  # mkdir's mode is masked by the umask
            elif self.root.stat().st_mode & 0o077 and not self._warned:
                Store._warned = True
                log.warning("store %s is readable by other users (mode %o): it holds patient "
                            "data; consider chmod 700", self.root,
                            self.root.stat().st_mode & 0o777)
            meta = self.root / STORE_FILE
            if not meta.exists():
                write_json_atomic(meta, {"schema_version": STORE_SCHEMA_VERSION})
        except OSError as exc:
            raise EnvironmentIOError.from_os_error(exc, exc.filename or self.root) from exc
        self._check_schema()

    def refuse_foreign(self) -> None:
        """StoreError when `root` is a folder with content but no store.json. What `ensure`
        makes before store.json (empty snapshots/ and tmp/, the half-written store.json of a
        killed run) does not count, so a store whose creation was interrupted is finished."""
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{self.root}: not a varreinterp store (not a folder)")
        if (self.root / STORE_FILE).exists() or not self.root.is_dir():
            return
        foreign = sorted(entry.name for entry in self.root.iterdir() if not _made_first(entry))
        if foreign:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise StoreError(f"{self.root}: not a varreinterp store (no {STORE_FILE}, and it "
                             f"holds {shown}); nothing in it was touched: choose a new or "
                             "empty folder for the store")

    def _check_schema(self) -> None:
        meta = self.root / STORE_FILE
        try:
            version = json.loads(meta.read_text()).get("schema_version")
        except OSError as exc:
            raise store_os_error(exc, meta, "unreadable store metadata") from exc
        except (ValueError, AttributeError) as exc:
            raise StoreError(f"{meta}: unreadable store metadata") from exc
        if version != STORE_SCHEMA_VERSION:
            raise StoreError(f"{meta}: unsupported store schema version {version!r}")

    @contextlib.contextmanager
    def lock(self, purpose: str) -> Iterator[None]:
        """Exclusive writer lock. The kernel drops a flock when its holder dies, so a lock file
        still naming a dead pid is a stale lock: taken over with a warning. Re-entrant (a
        migration on first use inside a writer takes it again)."""
        if self._locked:
            yield
            return
        self.ensure()
        path = self.root / "lock"
        try:  # never O_TRUNC: the file is emptied only once the flock is ours
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise store_os_error(exc, path, "cannot open the lock") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                raise LockHeldError(
                    f"{self.root}: store is locked by pid {holder.get('pid', '?')} "
                    f"({holder.get('purpose', '?')}, started {holder.get('started', '?')})"
                ) from None
            # A clean release empties the file, so a pid still written here died holding it.
            previous = _read_holder(fd)
            if previous.get("pid"):
                log.warning(
                    "taking over stale lock of pid %s (%s, started %s), which is no longer running",
                    previous.get("pid"), previous.get("purpose"), previous.get("started"),
                )
            info = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": purpose,
                    "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(info).encode(), 0)
            except OSError as exc:
                raise store_os_error(exc, path, "cannot write the lock") from exc
            self._clean_tmp()
            self._locked = True
            try:
                yield
            finally:
                self._locked = False
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _clean_tmp(self) -> None:
        """Leftovers of a killed writer; only ever removed while holding the lock, and only
        under the names this tool gives them (`_TMP_NAMES`): anything else was put there by
        someone else. A reader's working folder (`work-<pid>-...`) is left alone while that
        process lives."""
        for leftover in self.tmp_dir.iterdir():
            if not _TMP_NAMES.match(leftover.name) or _owner_alive(leftover.name):
                continue
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)

    def reclaim(self) -> None:
        """Remove the working folders of processes that died (kill -9): any command that opens
        the store does this, not only the writers (and only in a store: a folder without
        store.json is not ours to clean)."""
        if not self.tmp_dir.is_dir() or not (self.root / STORE_FILE).is_file():
            return
        for leftover in self.tmp_dir.glob("work-*"):
            if not _owner_alive(leftover.name):
                shutil.rmtree(leftover, ignore_errors=True)

    @contextlib.contextmanager
    def workdir(self) -> Iterator[Path]:
        """A private (0700) working folder for this command inside the store, for every
        temporary file (decompressed parts, BCF conversions, DuckDB spill): they may hold
        genotypes, which must not land in a shared /tmp. Removed on every exit path; a folder
        left by a killed process is reclaimed by the next command."""
        self.ensure()
        self.reclaim()
        path = Path(tempfile.mkdtemp(prefix=f"work-{os.getpid()}-", dir=self.tmp_dir))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A private directory under tmp/, removed unless the caller renamed it away."""
        path = Path(tempfile.mkdtemp(prefix="stage-", dir=self.tmp_dir))
        try:
            yield path
        finally:
            if path.exists():
                shutil.rmtree(path, ignore_errors=True)

    # ---------------------------------------------------------------- snapshots
    def snapshot_names(self) -> list[str]:
        if not self.snapshots_dir.is_dir():
            return []
        return sorted(p.name for p in self.snapshots_dir.iterdir() if p.is_dir())

    def snapshots(self) -> list[Snapshot]:
        """Every readable snapshot, by build then release (`release_order`), so each lineage's
        newest release is its last. A snapshot whose manifest cannot be read is left out and
        listed in `broken()`: it affects only what depends on it (see `broken_lineages`)."""
        found = []
        for name in self.snapshot_names():
            try:
                found.append(self.get(name))
            except StoreError:
                continue
        return sorted(found, key=lambda s: (s.manifest.assembly, release_order(s.manifest)))

    def broken(self) -> dict[str, str]:
        """Snapshots whose manifest cannot be read: name -> the error."""
        out = {}
        for name in self.snapshot_names():
            try:
                self.get(name)
            except StoreError as exc:
                out[name] = exc.one_line()
        return out

    def broken_lineages(self) -> dict[str, str]:
        """The lineage a broken snapshot probably belongs to (from its name; '*' when the
        name does not tell) -> the error. Choosing the newest release of such a lineage could
        silently pick an older one, so commands refuse it."""
        out = {}
        for name, error in self.broken().items():
            for assembly in ("GRCh37", "GRCh38"):
                if f"-{assembly}-" in name:
                    prefix = name.split(f"-{assembly}-")[0]
                    base = {"clinvar": "clinvar", "clinvar-summary": "clinvar-summary"}.get(
                        prefix, prefix)
                    out[f"{base}/{assembly}"] = error
                    break
            else:
                out["*"] = error
        return out

    def use(self, name: str) -> Snapshot:
        """A snapshot about to be read: its manifest's self-checksum and every file's checksum
        are checked first (once per process), so a damaged or edited snapshot is refused
        (exit 4, naming the file) instead of flowing into a report."""
        snap = self.get(name)
        self.check(snap)
        return snap

    def check(self, snap: Snapshot) -> None:
        key = (snap.name, tuple(_stat_key(snap.path / f) for f in snap.manifest.files))
        if key in self._verified:
            return
        problems = self._problems(snap)
        if problems:
            raise StoreError(f"{snap.path}: {problems[0]}; snapshot {snap.name} fails its "
                             "checksums (see `snapshot verify`): not used")
        self._verified.add(key)

    def _problems(self, snap: Snapshot) -> list[str]:
        found = []
        if not snap.manifest.is_sealed():
            found.append(f"{MANIFEST_FILE}: manifest checksum mismatch (edited or corrupt)")
        for fname, expected in snap.manifest.files.items():
            fpath = snap.path / fname
            if not fpath.is_file():
                found.append(f"{fname} is missing")
            elif sha256_file(fpath) != expected:
                found.append(f"{fname} checksum mismatch (corrupt)")
        return found

    def get(self, name: str) -> Snapshot:
        path = self.snapshots_dir / name
        manifest_path = path / MANIFEST_FILE
        if not manifest_path.is_file():
            known = ", ".join(self.snapshot_names()) or "none"
            raise SnapshotNotFoundError(
                f"no snapshot named {name!r} in store {self.root} (stored: {known})")
        key = (name, _stat_key(manifest_path))
        manifest = self._manifests.get(key)
        if manifest is None:
            manifest = self._manifests[key] = SnapshotManifest.load(manifest_path)
        if manifest.name != name:
            raise StoreError(f"{manifest_path}: manifest names {manifest.name!r}, not {name!r}")
        return Snapshot(manifest, path)

    def exists(self, name: str) -> bool:
        return (self.snapshots_dir / name / MANIFEST_FILE).is_file()

    def find_by_source(self, sha256: str, assembly: str | None = None,
                       mapping_sha256: str | None = None) -> Snapshot | None:
        """The snapshot already made from this content (and assembly and mapping, since one
        variant_summary file holds two builds and one table can be read two ways)."""
        for snap in self.snapshots():
            m = snap.manifest
            if (m.source_sha256 == sha256 and assembly in (None, m.assembly)
                    and mapping_sha256 == (m.mapping or {}).get("sha256")):
                return snap
        return None

    def newest(self, assembly: str, lineage: str | None = None) -> Snapshot | None:
        """The newest release of a build (and lineage, when given)."""
        same = [s for s in self.snapshots() if s.manifest.assembly == assembly
                and lineage in (None, s.manifest.lineage)]
        return same[-1] if same else None

    def lineage(self, lineage: str) -> list[Snapshot]:
        """A lineage's snapshots, oldest release first."""
        return [s for s in self.snapshots() if s.manifest.lineage == lineage]

    def commit_snapshot(self, staged: Path, manifest: SnapshotManifest) -> Snapshot:
        """Seal the manifest into the staged directory and rename it into place."""
        manifest.seal()
        write_json_atomic(staged / MANIFEST_FILE, manifest.to_json())
        dest = self.snapshots_dir / manifest.name
        try:
            work_committed()  # just before the rename: no signal between it and the latch
            os.rename(staged, dest)
        except OSError as exc:
            raise store_os_error(exc, dest, "cannot store snapshot") from exc
        return Snapshot(manifest, dest)

    def remove(self, name: str) -> None:
        snap = self.get(name)
        # Rename first so readers never see a half-deleted snapshot.
        trash = Path(tempfile.mkdtemp(prefix="trash-", dir=self.tmp_dir))
        os.rename(snap.path, trash / name)
        shutil.rmtree(trash, ignore_errors=True)

    def verify(self, name: str | None = None) -> list[VerifyProblem]:
        names = [name] if name else self.snapshot_names()
        if name and not (self.snapshots_dir / name).is_dir():
            self.get(name)  # raises the not-found error
        problems: list[VerifyProblem] = []
        for n in names:
            try:
                snap = self.get(n)
            except StoreError as exc:
                problems.append(VerifyProblem(n, str(exc)))
                continue
            problems += [VerifyProblem(n, p) for p in self._problems(snap)]
        return problems


def check_fields(cls: type, data: object) -> str | None:
    """Why `data` (a JSON object read from the store) does not fit dataclass `cls`, or None.
    A manifest or registry edited by hand must fail with its file named, not deep inside."""
    if not isinstance(data, dict):
        return "not a JSON object"
    from dataclasses import MISSING, fields

    known = {f.name: f for f in fields(cls)}
    extra = sorted(set(data) - set(known))
    if extra:
        return f"unknown field(s) {', '.join(extra)}"
    for name, f in known.items():
        if name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                return f"field {name} is missing"
            continue
        if not _fits(str(f.type), data[name]):
            return f"field {name} should be {f.type}, not {json.dumps(data[name])[:60]}"
    return None


def _fits(annotation: str, value: object) -> bool:
    options = [a.strip() for a in annotation.split("|")]
    for option in options:
        if option == "None" and value is None:
            return True
        if option == "str" and isinstance(value, str):
            return True
        if option == "int" and isinstance(value, int) and not isinstance(value, bool):
            return True
        if option == "float" and isinstance(value, int | float) and not isinstance(value, bool):
            return True
        if option == "bool" and isinstance(value, bool):
            return True
        if option.startswith("dict[str, ") and isinstance(value, dict):
            inner = option[len("dict[str, "):-1]
            if all(isinstance(k, str) and _fits(inner, v) for k, v in value.items()):
                return True
        if option.startswith("list[") and isinstance(value, list):
            inner = option[len("list["):-1]
            if all(_fits(inner, v) for v in value):
                return True
    return False


def _stat_key(path: Path) -> tuple[int, int, int]:
    try:
        st = path.stat()
    except OSError:
        return (0, 0, 0)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _made_first(entry: Path) -> bool:
    """Whether `entry` of a folder without store.json is what `ensure` creates before it (an
    interrupted creation): empty snapshots/ or tmp/, or store.json's own temporary file."""
    if entry.name.startswith(f".{STORE_FILE}."):
        return entry.is_file() and not entry.is_symlink()
    return (entry.name in ("snapshots", "tmp") and entry.is_dir() and not entry.is_symlink()
            and not any(entry.iterdir()))


def _owner_alive(name: str, prefix: str = "work") -> bool:
    """Whether a `<prefix>-<pid>-...` folder's process still runs (other names: no owner)."""
    parts = name.split("-")
    if len(parts) < 3 or parts[0] != prefix or not parts[1].isdigit():
        return False
    return pid_alive(int(parts[1]))


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (one we may not signal counts as running)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_holder(fd: int) -> dict[str, str]:
    try:
        raw = os.pread(fd, 4096, 0)
        data = json.loads(raw.decode()) if raw.strip() else {}
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}



def owner_alive(name: str, prefix: str) -> bool:
    """Whether the process that named a folder `<prefix>-<pid>-...` still runs."""
    return _owner_alive(name, prefix)
