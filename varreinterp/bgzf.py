"""BGZF (bgzip) files read on both cores.

gzip decompression is single-threaded, and it bounds how fast a large VCF can be read. BGZF is a
series of independent gzip members of at most 64 KiB, so blocks can be inflated in parallel, and
a file can be cut between blocks into parts that are themselves valid gzip files, which DuckDB
then reads in parallel."""

from __future__ import annotations

import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import cast

from isal import isal_zlib  # ISA-L: inflates 3.4x faster than zlib here, and frees the GIL

# isal's stub declares `error` as an instance; it is the exception class.
_InflateError = cast(type[Exception], isal_zlib.error)

Block = tuple[int, int, int]  # (member start, member end, deflate data start)


def is_bgzf(head: bytes) -> bool:
    return head[:2] == b"\x1f\x8b" and head[12:14] == b"BC"


def blocks(raw: bytes) -> list[Block]:
    """Every member of a BGZF file; ValueError when the data is not BGZF or is truncated."""
    try:
        return _blocks(raw)
    except struct.error:  # a header cut short
        raise ValueError("truncated or malformed BGZF block") from None


def _blocks(raw: bytes) -> list[Block]:
    out: list[Block] = []
    i = 0
    while i < len(raw):
        if raw[i:i + 2] != b"\x1f\x8b" or i + 12 > len(raw):
            raise ValueError("not a BGZF block")
        xlen = struct.unpack_from("<H", raw, i + 10)[0]
        j, bsize = i + 12, None
        while j < i + 12 + xlen:
            slen = struct.unpack_from("<H", raw, j + 2)[0]
            if raw[j:j + 2] == b"BC":
                bsize = struct.unpack_from("<H", raw, j + 4)[0]
            j += 4 + slen
        if bsize is None or i + bsize + 1 > len(raw):
            raise ValueError("truncated or malformed BGZF block")
        out.append((i, i + bsize + 1, i + 12 + xlen))
        i += bsize + 1
    return out


def inflate(raw: bytes, block: Block) -> bytes:
    """One block's text; ValueError when its data is corrupt."""
    try:
        return isal_zlib.decompress(raw[block[2]:block[1] - 8], -15)
    except _InflateError as exc:
        raise ValueError(f"corrupt BGZF block ({exc})") from exc


def inflate_all(raw: bytes) -> bytearray:
    """The whole text, inflated on both cores (inflating frees the GIL) straight into one
    buffer sized from the blocks' ISIZE fields; ValueError when a block's size is wrong."""
    found = blocks(raw)
    sizes = [struct.unpack_from("<I", raw, end - 4)[0] for _, end, _ in found]
    if any(size > 65536 for size in sizes):  # a BGZF block holds at most 64 KiB
        raise ValueError("BGZF block size out of range")
    starts = [0]
    for size in sizes:
        starts.append(starts[-1] + size)
    out = bytearray(starts[-1])

    def run(k: int) -> None:
        for i in range(k, min(k + 256, len(found))):
            text = inflate(raw, found[i])
            if len(text) != sizes[i]:
                raise ValueError("BGZF block size does not match its data")
            out[starts[i]:starts[i + 1]] = text

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(run, range(0, len(found), 256)))
    return out


def _gzip(data: bytes) -> bytes:
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)
    return packer.compress(data) + packer.flush()


def split_body(path: Path, header_lines: int, workdir: Path) -> list[Path] | None:
    """Two gzip files holding the data lines (header removed), cut at a line boundary near the
    middle, or None when the file is not BGZF or too small to be worth it."""
    raw = path.read_bytes()
    if not is_bgzf(raw[:16]):
        return None
    try:
        found = blocks(raw)
        if len(found) < 64:
            return None
        text, used = b"", 0
        while text.count(b"\n") < header_lines and used < len(found):
            text += inflate(raw, found[used])
            used += 1
        start = 0
        for _ in range(header_lines):
            start = text.index(b"\n", start) + 1
        mid = len(found) // 2
        if mid <= used:
            return None
        cut_block = inflate(raw, found[mid])
    except ValueError:
        return None  # the ordinary reader reports the damage with its own message
    newline = cut_block.find(b"\n")
    if newline < 0:
        return None
    first = workdir / "part1.vcf.gz"
    second = workdir / "part2.vcf.gz"
    first.write_bytes(_gzip(text[start:]) + raw[found[used][0]:found[mid][0]]
                      + _gzip(cut_block[:newline + 1]))
    second.write_bytes(_gzip(cut_block[newline + 1:]) + raw[found[mid][1]:])
    return [first, second]
