"""The cohort's inverted index: normalized allele key -> the patients who carry it.

Rows (key_chrom, pos, ref, alt, patient, zygosity, filter, chrom) live in Parquet files
partitioned by genomic bin (`BIN_SIZE` bp of one contig), each sorted by key then patient
number, with row-group statistics on `pos`. A nightly run reads only the row groups that
can hold a changed key, so what it reads grows with the carriers of what changed, not with
the cohort. `patient` is the number the registry gives each patient; a patient's rows are
live while the registry names their number (as its current or, until a replacement has been
reported, previous number): replacing or removing a patient only changes the registry, and a
compaction later drops the dead rows.

Layout under the store::

    cohort/bins/<ck>/<bin>/<batch>.parquet   (<ck>: a digest of the contig key, path-safe)

Every file is catalogued in the registry (patients.json, the one commit point) with its size
and a CRC32 per byte span (the magic, each row group, the footer): a run checks each span it
reads, so a flipped bit is refused without reading whole files, and a file the registry does
not name is an orphan of an interrupted run, removed by the next one.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import shutil
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from varreinterp import db
from varreinterp.errors import StoreError

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

log = logging.getLogger("varreinterp")

# Chosen by measurement (bench/README.md): 10,000 generated exomes, one release's changes.
BIN_SIZE = 20_000_000
ROW_GROUP_ROWS = 16_384
# More, and the bin is compacted into one file. A 1,000-exome add on 2 workers writes 6 files
# per bin (cohort._batches); compacting its 40M rows right away would cost more than reading 6
# key directories per bin saves a nightly run.
MAX_FILES_PER_BIN = 8
COLUMNS = ("key_chrom", "pos", "ref", "alt", "patient", "zygosity", "filter", "chrom")


@dataclass
class IndexFile:
    """One catalogued index file."""

    name: str  # path under cohort/bins
    key_chrom: str
    bin: int
    rows: int
    size: int
    spans: list[list[int]] = field(default_factory=list)  # [start, end, crc32], tiling the file
    role: str = "rows"  # "rows", or "keys": the key directory of the rows file of that name

    @property
    def bin_key(self) -> tuple[str, int]:
        return self.key_chrom, self.bin

    @property
    def keys_name(self) -> str:
        return keys_name(self.name)


def keys_name(rows_name: str) -> str:
    """The key directory beside a rows file: its distinct keys and the row groups holding them
    (row-group min/max of POS cannot say that a key is absent: changed keys are denser than a
    cohort's keys, so nearly every range holds one)."""
    return rows_name.removesuffix(".parquet") + ".keys.parquet"


@dataclass
class Catalog:
    """Every live index file, by name; part of the registry."""

    bin_size: int = BIN_SIZE
    files: dict[str, IndexFile] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"bin_size": self.bin_size,
                "files": {n: asdict(f) for n, f in sorted(self.files.items())}}

    @classmethod
    def from_json(cls, data: object, where: Path) -> Catalog:
        from varreinterp.store import check_fields

        if not isinstance(data, dict) or not isinstance(data.get("files"), dict) or \
                not isinstance(data.get("bin_size"), int):
            raise StoreError(f"{where}: malformed cohort index catalog")
        files = {}
        for name, entry in data["files"].items():
            problem = check_fields(IndexFile, entry)
            if problem:
                raise StoreError(f"{where}: malformed index entry {name!r} ({problem})")
            files[name] = IndexFile(**entry)
        return cls(int(data["bin_size"]), files)

    def by_bin(self) -> dict[tuple[str, int], list[IndexFile]]:
        """The rows files of each bin (their key directories: `keys_of`)."""
        out: dict[tuple[str, int], list[IndexFile]] = {}
        for f in self.files.values():
            if f.role == "rows":
                out.setdefault(f.bin_key, []).append(f)
        return out

    def keys_of(self, entry: IndexFile) -> IndexFile:
        found = self.files.get(entry.keys_name)
        if found is None:
            raise StoreError(f"cohort index: {entry.name} has no key directory in the catalog")
        return found

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files.values())


def bins_dir(store_root: Path) -> Path:
    return store_root / "cohort" / "bins"


# ------------------------------------------------------------------------------ writing
def stage_rows(con: duckdb.DuckDBPyConnection, relation: str, out: Path,
               bin_size: int) -> list[tuple[str, int, Path]]:
    """Write `relation` (the COLUMNS) under `out`, one sorted file per (contig, bin), each
    with its key directory; returns (key_chrom, bin, file) for each.

    DuckDB sorts (on every thread) and streams the sorted rows; pyarrow writes each
    (contig, bin) run as it completes, on writer threads, and derives its key directory from
    the rows in memory. Measured on 2M rows: 3.5 s against 9.3 s for a partitioned COPY
    (which must run on one thread to keep each file one sorted run) plus reading every file
    back for its key directory."""
    from concurrent.futures import ThreadPoolExecutor

    if out.exists():  # a task run again (its worker was lost after it wrote)
        shutil.rmtree(out)
    threads = max(1, int(str(db.scalar(con, "SELECT current_setting('threads')"))))
    reader = con.sql(f"""
        SELECT key_chrom, CAST(pos AS BIGINT) AS pos, ref, alt,
               CAST(patient AS BIGINT) AS patient, zygosity, filter, chrom,
               CAST(pos // {int(bin_size)} AS BIGINT) AS bin
        FROM {relation} ORDER BY key_chrom, bin, pos, ref, alt, patient
        """).to_arrow_reader(1 << 17)
    found: list[tuple[str, int, Path]] = []
    with ThreadPoolExecutor(threads) as pool, db.writing(out):
        pending: list[Any] = []
        for key, bin_, table in _runs(reader):
            path = out / _contig_dir(key) / f"{bin_}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            found.append((key, bin_, path))
            pending.append(pool.submit(_write_run, table, path))
            if len(pending) > 2 * threads:  # bounded memory: a few runs in flight
                pending.pop(0).result()
        for f in pending:
            f.result()
    return found


def _runs(reader: Any) -> Iterator[tuple[str, int, pa.Table]]:
    """(key_chrom, bin, rows) for each run of equal (key_chrom, bin) in sorted batches."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    current: tuple[str, int] | None = None
    parts: list[pa.RecordBatch] = []
    for batch in reader:
        n = batch.num_rows
        if not n:
            continue
        kc, bn = batch.column("key_chrom"), batch.column("bin")
        change = np.zeros(n - 1, bool)
        for col in (kc, bn):
            change |= pc.not_equal(col.slice(1), col.slice(0, n - 1)).to_numpy(
                zero_copy_only=False)
        cuts = [0, *(np.nonzero(change)[0] + 1).tolist(), n]
        for a, z in zip(cuts[:-1], cuts[1:], strict=True):
            run = (kc[a].as_py(), int(bn[a].as_py()))
            if run != current:
                if parts:
                    assert current is not None
                    yield current[0], current[1], pa.Table.from_batches(parts)
                current, parts = run, []
            parts.append(batch.slice(a, z - a))
    if parts:
        assert current is not None
        yield current[0], current[1], pa.Table.from_batches(parts)


def _write_run(table: pa.Table, path: Path) -> None:
    """One sorted (contig, bin) file and, beside it, its key directory: each distinct key
    (pos, ref, alt) with the row group holding it, in key order (the file's order)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = table.drop_columns(["bin"]).combine_chunks()
    pq.write_table(table, path, compression="zstd", row_group_size=ROW_GROUP_ROWS)
    # Row groups as written (read back from the footer, not assumed from the setting).
    meta = pq.read_metadata(path)
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    rg = np.repeat(np.arange(len(sizes), dtype=np.int32), sizes)
    pos, ref, alt = (table.column(c) for c in ("pos", "ref", "alt"))
    n = table.num_rows
    first = np.ones(n, bool)
    if n > 1:
        same = rg[1:] == rg[:-1]
        for col in (pos, ref, alt):
            same &= pc.equal(col.slice(1), col.slice(0, n - 1)).to_numpy(zero_copy_only=False)
        first[1:] = ~same
    idx = pa.array(np.nonzero(first)[0])
    keys = pa.table({"pos": pos.take(idx), "ref": ref.take(idx), "alt": alt.take(idx),
                     "rg": pa.array(rg[first], pa.int32())})
    pq.write_table(keys, keys_name(str(path)), compression="zstd", row_group_size=1 << 20)


def _contig_dir(key_chrom: str) -> str:
    import hashlib

    return hashlib.md5(key_chrom.encode()).hexdigest()[:16]


def describe(path: Path, name: str, key_chrom: str, bin_: int, role: str = "rows") -> IndexFile:
    """Catalog entry of a written file: its row count and a CRC32 per span."""
    import pyarrow.parquet as pq

    meta = pq.read_metadata(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        fh.seek(size - 8)
        footer = size - 8 - int.from_bytes(fh.read(4), "little")
        cuts = {0, 4, footer, size}
        for i in range(meta.num_row_groups):
            rg = meta.row_group(i)
            starts = []
            for j in range(rg.num_columns):
                col = rg.column(j)
                off = col.dictionary_page_offset if col.has_dictionary_page else None
                starts.append(off if off else col.data_page_offset)
            cuts.add(min(starts))
        edges = sorted(c for c in cuts if 0 <= c <= size)
        spans = []
        for start, end in zip(edges[:-1], edges[1:], strict=True):
            fh.seek(start)
            spans.append([start, end, zlib.crc32(fh.read(end - start))])
    return IndexFile(name, key_chrom, bin_, meta.num_rows, size, spans, role)


def publish(store_root: Path, staged: Iterable[tuple[str, int, Path]],
            batch: str) -> list[IndexFile]:
    """Move staged files into place under new names (nothing the registry names is touched)
    and describe them; the caller commits the registry."""
    entries = []
    for n, (key_chrom, bin_, path) in enumerate(staged):
        name = f"{_contig_dir(key_chrom)}/{bin_:05d}/{batch}-{n}.parquet"
        target = bins_dir(store_root) / name
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        staged_keys = Path(keys_name(str(path)))
        for source, entry_name, role in ((path, name, "rows"),
                                         (staged_keys, keys_name(name), "keys")):
            entries.append(describe(source, entry_name, key_chrom, bin_, role))
            os.replace(source, bins_dir(store_root) / entry_name)
    return entries


def new_batch_id() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(4)


def remove_orphans(store_root: Path, catalog: Catalog) -> int:
    """Index files the catalog does not name (a run killed before its commit, or files a
    compaction replaced): removed."""
    root = bins_dir(store_root)
    if not root.is_dir():
        return 0
    removed = 0
    for path in root.glob("*/*/*.parquet"):
        if path.relative_to(root).as_posix() not in catalog.files:
            path.unlink(missing_ok=True)
            removed += 1
    prune_empty_folders(store_root)
    return removed


def prune_empty_folders(store_root: Path) -> None:
    """Empty bin folders, then empty contig folders (left by removals or a failed commit),
    and the index folders themselves when nothing is left in them."""
    root = bins_dir(store_root)
    for pattern in ("*/*", "*"):
        for folder in root.glob(pattern):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    for folder in (root, root.parent):  # cohort/bins, then cohort/ (before any registry)
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


# ------------------------------------------------------------------------------ reading
class CheckedFile(io.RawIOBase):
    """A catalogued file, read through its spans: each span touched is read whole once and
    checked against its CRC32 (StoreError otherwise); `bytes_read` counts them."""

    def __init__(self, path: Path, entry: IndexFile):
        super().__init__()
        self.path = path
        self.entry = entry
        try:
            self._fh = open(path, "rb")  # noqa: SIM115 - closed with this object
        except FileNotFoundError:
            raise StoreError(f"{path}: cohort index file is missing (run `varreinterp "
                             "cohort verify`)") from None
        size = os.fstat(self._fh.fileno()).st_size
        if size != entry.size:
            self._fh.close()
            raise StoreError(f"{path}: cohort index file is {size} bytes, the catalog says "
                             f"{entry.size} (truncated or replaced)")
        self._pos = 0
        self._loaded: dict[int, bytes] = {}
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self.entry.size}[whence]
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read_range(self._pos, len(view))
        view[:len(data)] = data
        self._pos += len(data)
        return len(data)

    def read_range(self, start: int, length: int) -> bytes:
        end = min(start + length, self.entry.size)
        parts = []
        for i, (s, e, _) in enumerate(self.entry.spans):
            if e <= start or s >= end:
                continue
            span = self._span(i)
            parts.append(span[max(start, s) - s:min(end, e) - s])
        return b"".join(parts)

    def _span(self, i: int) -> bytes:
        if i not in self._loaded:
            start, end, crc = self.entry.spans[i]
            self._fh.seek(start)
            data = self._fh.read(end - start)
            if len(data) != end - start or zlib.crc32(data) != crc:
                raise StoreError(f"{self.path}: bytes {start}-{end} fail their checksum "
                                 "(corrupt or edited cohort index file)")
            self._loaded[i] = data
            self.bytes_read += len(data)
        return self._loaded[i]

    def verify_all(self) -> None:
        for i in range(len(self.entry.spans)):
            self._span(i)
            self._loaded.pop(i, None)

    def close(self) -> None:
        self._fh.close()
        self._loaded.clear()
        super().close()


def read_rows(store_root: Path, entry: IndexFile, groups: Sequence[int] | None,
              columns: Sequence[str] = COLUMNS) -> tuple[pa.Table, int]:
    """The rows of one file in row groups `groups` (None: all of them), and the bytes read
    (all of them checked)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    checked = CheckedFile(bins_dir(store_root) / entry.name, entry)
    try:
        # The footer span, checked, parsed on its own: pyarrow would otherwise read 64 KB
        # from the end of the file, and with it the last row group's whole span.
        start, end, _ = entry.spans[-1]
        footer = checked.read_range(start, end - start)
        meta = pq.read_metadata(pa.BufferReader(b"PAR1" + footer))
        pf = pq.ParquetFile(pa.PythonFile(checked, mode="r"), metadata=meta, pre_buffer=False)
        if groups is None:
            groups = list(range(pf.metadata.num_row_groups))
        table = pf.read_row_groups(list(groups), columns=list(columns)) if groups else \
            pf.schema_arrow.empty_table().select(list(columns))
        # One schema whatever wrote the file (an early migration wrote int32 numbers).
        for name in ("pos", "patient"):
            if name in table.column_names and table.schema.field(name).type != pa.int64():
                i = table.column_names.index(name)
                table = table.set_column(i, name, table.column(name).cast(pa.int64()))
        return table, checked.bytes_read
    finally:
        checked.close()


@dataclass(frozen=True)
class HitTask:
    """One bin's work in a run: which files (each with its key directory), which keys
    changed there, whose rows count."""

    store_root: str
    files: list[tuple[IndexFile, IndexFile]]  # (rows, keys)
    keys: Any  # pyarrow Table: key_chrom, pos, ref, alt (the changed keys in this bin)
    patients: Any  # numpy array of live patient numbers in the comparison


def bin_hits(task: HitTask) -> tuple[Any, int]:
    """The index rows of `task.patients` at `task.keys` in one bin, and the bytes read: a
    Dask task (module-level, picklable arguments)."""
    import pyarrow as pa

    root = Path(task.store_root)
    wanted = task.keys.select(["pos", "ref", "alt"])
    tables, read = [], 0
    for entry, keys in task.files:
        directory, n = read_rows(root, keys, None, ("pos", "ref", "alt", "rg"))
        read += n
        found = directory.join(wanted, keys=["pos", "ref", "alt"], join_type="inner")
        groups = sorted(set(found.column("rg").to_pylist()))
        if groups:
            table, n = read_rows(root, entry, groups)
            tables.append(table)
            read += n
    rows = pa.concat_tables(tables) if tables else None
    if rows is None or not rows.num_rows:
        return empty_rows(), read
    con = db.connect()  # never spills: the rows are patient data (no spill folder here)
    try:
        con.execute("SET threads = 1")
        con.register("rows_", rows)
        con.register("keys_", task.keys)
        con.register("live_", pa.table({"patient": pa.array(task.patients, pa.int64())}))
        hits = con.sql("""
            SELECT r.* FROM rows_ r
            SEMI JOIN keys_ k ON k.key_chrom = r.key_chrom AND k.pos = r.pos
                              AND k.ref = r.ref AND k.alt = r.alt
            SEMI JOIN live_ l ON l.patient = r.patient""").to_arrow_table()
    finally:
        con.close()
    return hits, read


def empty_rows() -> Any:
    import pyarrow as pa

    return pa.table({"key_chrom": pa.array([], pa.string()), "pos": pa.array([], pa.int64()),
                     "ref": pa.array([], pa.string()), "alt": pa.array([], pa.string()),
                     "patient": pa.array([], pa.int64()), "zygosity": pa.array([], pa.string()),
                     "filter": pa.array([], pa.string()), "chrom": pa.array([], pa.string())})


@dataclass(frozen=True)
class ScanTask:
    """Every row of some patients in one bin (replacements, migration checks)."""

    store_root: str
    files: list[IndexFile]
    patients: Any  # numpy array of patient numbers


def bin_rows(task: ScanTask) -> tuple[Any, int]:
    import pyarrow as pa

    tables, read = [], 0
    for entry in task.files:
        table, n = read_rows(Path(task.store_root), entry, None)
        tables.append(table)
        read += n
    if not tables:
        return empty_rows(), read
    con = db.connect()  # never spills: the rows are patient data (no spill folder here)
    try:
        con.execute("SET threads = 1")
        con.register("rows_", pa.concat_tables(tables))
        con.register("live_", pa.table({"patient": pa.array(task.patients, pa.int64())}))
        out = con.sql("SELECT r.* FROM rows_ r SEMI JOIN live_ l USING (patient)"
                      ).to_arrow_table()
    finally:
        con.close()
    return out, read


def verify_file(store_root: Path, entry: IndexFile) -> int:
    """Read every span of a file and check it; the bytes read."""
    checked = CheckedFile(bins_dir(store_root) / entry.name, entry)
    try:
        checked.verify_all()
        return checked.bytes_read
    finally:
        checked.close()


# ------------------------------------------------------------------------------ compaction
@dataclass(frozen=True)
class CompactTask:
    store_root: str
    files: list[IndexFile]
    live: Any  # numpy array of live patient numbers
    out: str  # staging folder for this bin


def compact_bin(task: CompactTask) -> list[tuple[str, int, str]]:
    """The live rows of one bin's files merged into one sorted file (in staging)."""
    import pyarrow as pa

    tables = [read_rows(Path(task.store_root), e, None)[0] for e in task.files]
    con = db.connect()  # never spills: the rows are patient data (no spill folder here)
    try:
        con.execute("SET threads = 1")
        con.register("rows_", pa.concat_tables(tables))
        con.register("live_", pa.table({"patient": pa.array(task.live, pa.int64())}))
        con.execute("CREATE TEMP TABLE live_rows AS SELECT r.* FROM rows_ r "
                    "SEMI JOIN live_ l USING (patient)")
        bin_size = 1 << 40  # one bin already: keep its rows together
        staged = stage_rows(con, "live_rows", Path(task.out), bin_size)
    finally:
        con.close()
    key, bin_ = task.files[0].bin_key
    return [(key, bin_, str(path)) for _, _, path in staged]


def run_task(task: HitTask | ScanTask) -> tuple[Any, int]:
    """A run's index task, whichever kind (one function for the engine to map)."""
    from varreinterp.allocator import keep_freed_memory

    keep_freed_memory()
    return bin_hits(task) if isinstance(task, HitTask) else bin_rows(task)
