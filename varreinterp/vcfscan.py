"""The data lines of a ClinVar-style VCF as Arrow columns, split by the compiled scanner; and
the one place the compiled module (`_vcfscan`) is imported and checked, for this reader and for
the patient prefilter (prefilter.py), which uses its other function.

`_vcfscan.c` makes one pass over each verified chunk of whole lines (linescan.py: BGZF inflated
and checked on both cores) and returns CHROM, POS, ID, REF, ALT and the requested INFO values.
It replaced one DuckDB `split_part` pass over every INFO string per key (about 0.5 s per key
on a 3M-record release). The extension is built when the package is installed; where no C
compiler was at hand it is absent and the importer keeps its SQL reader, which gives the same
rows (tests/test_vcfscan.py compares the two).

The scanner refuses what the SQL reader would store wrongly: a wrong column count, a POS that
is not plain digits in 1..2^31-1, an empty CHROM or REF, a NUL byte, text that is not UTF-8.
Each refusal names its line. Blank lines are skipped, as the SQL reader skips them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from varreinterp import linescan
from varreinterp.db import MAX_POS
from varreinterp.linescan import LineError

_ABI = 2  # the _vcfscan.c this code calls (its ABI constant)
_vcfscan: ModuleType | None
try:
    from varreinterp import _vcfscan
except ImportError:  # built optionally (setup.py): no compiler, no extension
    _vcfscan = None
if getattr(_vcfscan, "ABI", None) != _ABI:  # built from an older source: not rebuilt yet
    _vcfscan = None

if TYPE_CHECKING:
    import pyarrow as pa

FIXED = ("chrom", "id", "ref", "alt")
_GROUP_BYTES = 256 << 20  # Arrow handed to DuckDB at a time: memory stays bounded

_E_COLUMNS, _E_POS, _E_EMPTY, _E_TOO_LONG = 1, 2, 3, 5


def available() -> bool:
    return _vcfscan is not None


def info_column(key: str) -> str:
    """The name of the column holding INFO/`key`."""
    return f"info_{key}"


def scan_batch(text: bytes, ncols: int, keys: Sequence[str]) -> pa.RecordBatch:
    """The rows of `text` (whole LF-terminated lines, each with `ncols` tab-separated columns):
    pos (int64), chrom, id, ref, alt and info_<KEY> per key (strings, '' where absent)."""
    import pyarrow as pa

    assert _vcfscan is not None
    _check_bytes(text)
    rows, error, line, detail, pos, columns = _vcfscan.scan(
        text, ncols, tuple(k.encode() for k in keys))
    if error:
        raise LineError(line, _message(error, _line(text, line), ncols, detail))
    arrays = [pa.Array.from_buffers(pa.int64(), rows, [None, pa.py_buffer(pos)])]
    arrays += [pa.Array.from_buffers(pa.string(), rows,
                                     [None, pa.py_buffer(offsets), pa.py_buffer(data)])
               for offsets, data in columns]
    names = ["pos", *FIXED, *(info_column(k) for k in keys)]
    return pa.RecordBatch.from_arrays(arrays, names=names)


def read_tables(path: Path, skip: int, ncols: int, keys: Sequence[str],
                workdir: Path) -> Iterator[pa.Table]:
    """The data lines of `path` after its first `skip`, scanned, in file order, as tables of
    about 256 MB each. Damage or a refused line is an InputError naming `path` and the line."""
    import pyarrow as pa

    group: list[pa.RecordBatch] = []
    size = 0
    for chunk in linescan.map_lines(path, skip, lambda text: scan_batch(text, ncols, keys),
                                    workdir):
        group.append(chunk.result)
        size += chunk.result.nbytes
        if size >= _GROUP_BYTES:
            yield pa.Table.from_batches(group)
            group, size = [], 0
    if group:
        yield pa.Table.from_batches(group)


def _check_bytes(text: bytes) -> None:
    nul = text.find(b"\0")
    if nul >= 0:  # readers disagree on what follows a NUL: refuse it
        raise LineError(text.count(b"\n", 0, nul), "a NUL byte inside a line")
    if not text.isascii():
        try:
            text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LineError(text.count(b"\n", 0, exc.start),
                            "not a text file (invalid UTF-8)") from None


def _line(text: bytes, k: int) -> list[str]:
    start = 0
    for _ in range(k):
        start = text.index(b"\n", start) + 1
    end = text.find(b"\n", start)
    raw = text[start:] if end < 0 else text[start:end]
    return raw.decode("utf-8", "replace").split("\t")


def _message(error: int, fields: list[str], ncols: int, found: int) -> str:
    if error == _E_COLUMNS:
        return f"malformed record (expected {ncols} tab-separated columns, found {found})"
    if error == _E_TOO_LONG:
        return "a column longer than 2 GB"
    chrom, pos, ref = fields[0], fields[1], fields[3]
    why = f"POS must be digits in 1..{MAX_POS}, " if error == _E_POS else ""
    return f"malformed record ({why}CHROM={chrom!r} POS={pos!r} REF={ref!r})"
