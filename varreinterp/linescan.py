"""The data lines of a text input, in whole-line chunks scanned on both cores, in file order.

The byte-level readers (the genotype scanner, the prefilter) work on runs of complete lines.
This module feeds them: BGZF blocks are inflated and verified (bgzf.inflate: CRC32 and ISIZE)
in groups, in worker threads, and the line cut between two groups is stitched back together;
plain text is paged in with mmap; plain gzip, which cannot be cut, is first inflated by
bgzf.decompressed_text. CRLF line ends become LF, as htslib reads them; a lone CR inside a line
is refused.

A scan function may raise `LineError(k, message)` about the k-th line (0-based) of the chunk it
was given: `map_lines` turns it into an InputError naming the file and its line number.
"""

from __future__ import annotations

import mmap
import struct
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from varreinterp import bgzf
from varreinterp.errors import InputError

R = TypeVar("R")

_GROUP_BLOCKS = 64  # BGZF blocks per work item: about 4 MB of text
_CHUNK_BYTES = 4 << 20  # the same for plain text
_IN_FLIGHT = 4  # chunks inflated ahead of the consumer: memory stays a few chunks


class LineError(Exception):
    """A problem on line `line` (0-based) of the chunk a scan function was given."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass
class Chunk(Generic[R]):
    """One scanned run of lines: `lines` of them (blank lines included), and the scan's result."""

    lines: int
    result: R


def map_lines(path: Path, skip: int, scan: Callable[[bytes], R], workdir: Path,
              source: Path | None = None,
              line_of: Callable[[int], int] | None = None) -> Iterator[Chunk[R]]:
    """`scan` applied to the data lines of `path` (the lines after its first `skip`), a run of
    complete LF-terminated lines at a time, in file order. Errors name `source` (default
    `path`) and the line `line_of(i)` of the i-th data line (default: its line in `path`):
    damage, a lone CR, a file that ends inside its header, and any LineError."""
    name = source or path
    number = line_of or (lambda i: skip + i + 1)
    with open(path, "rb") as fh:
        head = fh.read(16)
    if bgzf.is_bgzf(head):
        chunks = _bgzf_source(path, skip, name)
    else:
        plain = path
        if bgzf.is_gzip(head):
            try:
                plain = bgzf.decompressed_text(path, workdir)
            except InputError as exc:  # name the caller's file and line, as below
                line = number(exc.line - skip - 1) if exc.line and exc.line > skip else exc.line
                raise InputError(exc.message, name, line) from exc
        chunks = _plain_source(plain, skip, name)
    yield from _stitch(chunks, number, scan, name)


@dataclass
class _Source:
    """The data text of a file in `count` chunks, the first starting at the first data line;
    `text(k)` reads one (in a worker thread)."""

    count: int
    text: Callable[[int], bytes]
    close: Callable[[], None]


def _header_end(text: bytes | mmap.mmap, skip: int, complete: bool = False) -> int | None:
    """The offset just past the `skip`-th line end of `text`, or None when it has fewer. With
    `complete` (`text` is the whole file), a last header line without its line end ends at
    the end of the file (a header-only file, as htslib reads it)."""
    start = 0
    for n in range(skip):
        nl = text.find(b"\n", start)
        if nl < 0:
            if complete and n == skip - 1 and start < len(text):
                return len(text)
            return None
        start = nl + 1
    return start


def _bgzf_source(path: Path, skip: int, name: Path) -> _Source:
    raw = path.read_bytes()  # compressed: a fraction of the text
    try:
        bgzf.check_eof(raw)
        found = bgzf.blocks(raw)
    except ValueError as exc:
        raise InputError(bgzf.damage_message(exc), name) from None

    def inflate(blocks: list[bgzf.Block]) -> bytes:
        try:
            return b"".join(bgzf.inflate(raw, b) for b in blocks)
        except (ValueError, struct.error) as exc:
            raise InputError(bgzf.damage_message(exc), name) from None

    # The header is read block by block until its last line end: data starts right after.
    header, first, lead = b"", 0, b""
    if skip:
        for i, block in enumerate(found):
            header += inflate([block])
            end = _header_end(header, skip, complete=i == len(found) - 1)
            if end is not None:
                first, lead = i + 1, header[end:]  # the data's first bytes
                break
        else:
            raise InputError("the file ends inside its header", name)
    groups = [found[i:i + _GROUP_BLOCKS] for i in range(first, len(found), _GROUP_BLOCKS)]
    if lead and not groups:
        groups = [[]]

    def text(k: int) -> bytes:
        body = inflate(groups[k])
        return lead + body if k == 0 else body

    return _Source(len(groups), text, lambda: None)


def _plain_source(path: Path, skip: int, name: Path) -> _Source:
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        if not size:
            if skip:
                raise InputError("the file ends inside its header", name)
            return _Source(0, lambda k: b"", lambda: None)
        data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    found = _header_end(data, skip, complete=True)
    if found is None:
        data.close()
        raise InputError("the file ends inside its header", name)
    start = found

    def text(k: int) -> bytes:
        return data[start + k * _CHUNK_BYTES:start + (k + 1) * _CHUNK_BYTES]

    return _Source((size - start + _CHUNK_BYTES - 1) // _CHUNK_BYTES, text, data.close)


@dataclass
class _Split:
    head: bytes  # up to and including the first LF (the end of a line begun before)
    body: bytes  # whole lines
    tail: bytes  # after the last LF (a line continued in the next chunk)


def _split(text: bytes) -> _Split:
    first = text.find(b"\n")
    if first < 0:
        return _Split(text, b"", b"")  # no line end at all: everything continues a line
    last = text.rfind(b"\n")
    return _Split(text[:first + 1], text[first + 1:last + 1], text[last + 1:])


def _lf(text: bytes) -> bytes:
    """CRLF -> LF; a CR left over is a LineError on its line."""
    if b"\r" not in text:
        return text
    fixed = text.replace(b"\r\n", b"\n")
    lone = fixed.find(b"\r")
    if lone >= 0:
        raise LineError(fixed.count(b"\n", 0, lone), "stray carriage return (CR) inside a line")
    return fixed


def _run(scan: Callable[[bytes], R], text: bytes) -> Chunk[R] | LineError:
    try:
        fixed = _lf(text)
        return Chunk(fixed.count(b"\n"), scan(fixed))
    except LineError as exc:
        return exc


def _stitch(source: _Source, number: Callable[[int], int], scan: Callable[[bytes], R],
            name: Path) -> Iterator[Chunk[R]]:
    """Each chunk is split at its first and last line end and its whole lines scanned in a
    worker; the line cut between two chunks is joined and scanned here, before the next
    chunk's lines."""

    def work(k: int) -> tuple[_Split, Chunk[R] | LineError]:
        split = _split(source.text(k))
        if k == 0 and split.head.endswith(b"\n"):  # the first chunk starts at a line start
            split = _Split(b"", split.head + split.body, split.tail)
        return split, _run(scan, split.body)

    lines_done = 0
    carry = b""
    pool = ThreadPoolExecutor(max_workers=2)
    pending: deque[Future[tuple[_Split, Chunk[R] | LineError]]] = deque()
    k_next = 0
    try:
        while k_next < source.count or pending:
            while k_next < source.count and len(pending) < _IN_FLIGHT:
                pending.append(pool.submit(work, k_next))
                k_next += 1
            split, outcome = pending.popleft().result()
            parts = [outcome]
            if split.head:
                joined = carry + split.head
                if not joined.endswith(b"\n"):
                    carry = joined  # a line longer than a chunk: keep joining
                    continue
                parts.insert(0, _run(scan, joined))
                carry = b""
            for part in parts:
                done = _checked(part, lines_done, number, name)
                lines_done += done.lines
                yield done
            carry += split.tail
        if carry:  # a last line without its line end
            if carry.endswith(b"\r"):  # not a CRLF: nothing follows it
                raise InputError("stray carriage return (CR) at the end of the file", name,
                                 number(lines_done + carry.count(b"\n")))
            done = _checked(_run(scan, carry + b"\n"), lines_done, number, name)
            yield done
    finally:
        for f in pending:
            f.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        source.close()


def _checked(outcome: Chunk[R] | LineError, lines_done: int, number: Callable[[int], int],
             name: Path) -> Chunk[R]:
    if isinstance(outcome, LineError):
        raise InputError(outcome.message, name, number(lines_done + outcome.line))
    return outcome
