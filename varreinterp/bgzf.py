"""Compressed inputs, checked the way htslib checks them, and inflated on both cores.

Every (b)gzip file we read goes through here, so damage is never read as data:
- a BGZF file must end with the 28-byte BGZF end-of-file marker: a file cut at a block boundary
  (a killed `bgzip` or `bcftools` leaves exactly this) is otherwise a valid, shorter file;
- every block's CRC32 and ISIZE are compared with the inflated text (one flipped bit in a block
  otherwise inflates to different text without any error);
- a plain gzip file goes through zlib, which checks each member's CRC and length, and refuses a
  member cut short.

BGZF is a series of independent gzip members of at most 64 KiB, so blocks are inflated in
parallel (ISA-L frees the GIL); the verified text is written to a private working file that the
columnar reader parses on every core."""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, cast

from isal import isal_zlib  # ISA-L: inflates 3.4x faster than zlib here, and frees the GIL

from varreinterp.errors import EnvironmentIOError, InputError

# isal's stub declares `error` as an instance; it is the exception class.
_InflateError = cast(type[Exception], isal_zlib.error)

Block = tuple[int, int, int]  # (member start, member end, deflate data start)

# The empty block every BGZF file ends with (SAM/BAM specification, section 4.1.2).
EOF_MARKER = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
_CHUNK_BLOCKS = 256  # blocks per work item: about 16 MB of text


def is_gzip(head: bytes) -> bool:
    return head[:2] == b"\x1f\x8b"


def is_bgzf(head: bytes) -> bool:
    return head[:2] == b"\x1f\x8b" and head[12:14] == b"BC"


def blocks(raw: bytes | memoryview) -> list[Block]:
    """Every member of a BGZF file; ValueError when the data is not BGZF or is truncated."""
    try:
        return _blocks(raw)
    except struct.error:  # a header cut short
        raise ValueError("truncated or malformed BGZF block") from None


def _blocks(raw: bytes | memoryview) -> list[Block]:
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


def check_eof(raw: bytes | memoryview) -> None:
    """ValueError unless the data ends with the BGZF end-of-file marker."""
    if bytes(raw[-len(EOF_MARKER):]) != EOF_MARKER:
        raise ValueError("no BGZF end-of-file marker: the file is truncated")


def has_eof_marker(path: Path) -> bool:
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        if size < len(EOF_MARKER):
            return False
        fh.seek(size - len(EOF_MARKER))
        return fh.read() == EOF_MARKER


def inflate(raw: bytes | memoryview, block: Block) -> bytes:
    """One block's text, checked against the block's CRC32 and ISIZE; ValueError when its data
    is corrupt."""
    start, end, data = block
    try:
        text: bytes = isal_zlib.decompress(raw[data:end - 8], -15)
    except _InflateError as exc:
        raise ValueError(f"corrupt BGZF block at byte {start} ({exc})") from exc
    crc, size = struct.unpack_from("<II", raw, end - 8)
    if len(text) != size:
        raise ValueError(f"corrupt BGZF block at byte {start} (size check failed)")
    if isal_zlib.crc32(text) != crc:
        raise ValueError(f"corrupt BGZF block at byte {start} (CRC check failed)")
    return text


def inflate_all(raw: bytes) -> bytearray:
    """The whole text of a BGZF file, verified (end-of-file marker, CRC32 and size of every
    block), inflated on both cores straight into one buffer sized from the blocks' ISIZE."""
    check_eof(raw)
    found = blocks(raw)
    sizes = [struct.unpack_from("<I", raw, end - 4)[0] for _, end, _ in found]
    if any(size > 65536 for size in sizes):  # a BGZF block holds at most 64 KiB
        raise ValueError("BGZF block size out of range")
    starts = [0]
    for size in sizes:
        starts.append(starts[-1] + size)
    out = bytearray(starts[-1])

    def run(k: int) -> None:
        for i in range(k, min(k + _CHUNK_BLOCKS, len(found))):
            out[starts[i]:starts[i + 1]] = inflate(raw, found[i])

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(run, range(0, len(found), _CHUNK_BLOCKS)))
    return out


def iter_text(raw: bytes, chunk_blocks: int = _CHUNK_BLOCKS) -> Iterator[bytes]:
    """The verified text of a BGZF file in file order, a chunk of blocks at a time, inflated
    two chunks at a time on both cores; memory holds a few chunks whatever the file's size."""
    check_eof(raw)
    found = blocks(raw)

    def work(k: int) -> bytes:
        return b"".join(inflate(raw, b) for b in found[k:k + chunk_blocks])

    with ThreadPoolExecutor(max_workers=2) as pool:
        yield from pool.map(work, range(0, len(found), chunk_blocks))


def decompressed_text(path: Path, workdir: Path, *, text: bool = True) -> Path:
    """The file's verified text with LF line ends, for the columnar reader: `path` itself when
    it is plain text without a carriage return; else a new file under `workdir` (the run's
    private folder). With text=False the inflated bytes are kept as they are (BCF). A CR is
    only ever part of a CRLF line end there (htslib drops it); a lone
    CR inside a line, or damage, is an InputError naming the file (and the line)."""
    check_file(path)
    with open(path, "rb") as fh:
        head = fh.read(16)
    if not is_gzip(head) and (not text or not _has_cr_or_nul(path)):
        return path
    out = workdir / (path.name.removesuffix(".gz").removesuffix(".bgz") + ".txt")
    n = 1
    while out.exists():
        n += 1
        out = workdir / f"{n}-{out.name}"
    try:
        with open(out, "wb") as dst:
            lines: _LineEnds | _Binary = _LineEnds(path, out, dst) if text else _Binary(dst)
            if is_bgzf(head):
                for chunk in iter_text(path.read_bytes()):
                    lines.write(chunk)
            elif is_gzip(head):
                _gunzip(path, lines.write)
            else:
                with open(path, "rb") as src:
                    while block := src.read(8 << 20):
                        lines.write(block)
            lines.close()
    except (ValueError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        out.unlink(missing_ok=True)
        raise InputError(damage_message(exc), path) from exc
    except OSError as exc:
        out.unlink(missing_ok=True)
        if exc.filename is None:  # a write failed: the disk of the work folder
            raise EnvironmentIOError.from_os_error(exc, out) from exc
        raise
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return out


def _has_cr_or_nul(path: Path) -> bool:
    with open(path, "rb") as fh:
        while block := fh.read(8 << 20):
            if b"\r" in block or b"\0" in block:
                return True
    return False


class _Binary:
    """Passes inflated bytes through untouched (BCF is binary)."""

    def __init__(self, dst: IO[bytes]):
        self.write = dst.write

    def close(self) -> None:
        pass


class _LineEnds:
    """Passes text through, turning CRLF into LF (a CR alone inside a line, or a NUL byte, is
    refused with its line number); the common case costs two memchr per block. Lines are only
    counted on that error path, from the text already written."""

    def __init__(self, path: Path, out: Path, dst: IO[bytes]):
        self.path = path
        self.out = out
        self.dst = dst
        self.carry = b""

    def write(self, block: bytes) -> None:
        if self.carry:
            block, self.carry = self.carry + block, b""
        nul = block.find(b"\0")
        if nul >= 0:  # readers disagree on what follows a NUL: refuse it
            self.dst.write(block[:nul])
            raise InputError("a NUL byte inside a line", self.path,
                             self._lines_before() + 1)
        if b"\r" not in block:
            self.dst.write(block)
            return
        if block.endswith(b"\r"):
            block, self.carry = block[:-1], b"\r"
        fixed = block.replace(b"\r\n", b"\n")
        lone = fixed.find(b"\r")
        if lone >= 0:
            raise InputError("stray carriage return (CR) inside a line", self.path,
                             self._lines_before() + fixed.count(b"\n", 0, lone) + 1)
        self.dst.write(fixed)

    def close(self) -> None:
        if self.carry:
            raise InputError("stray carriage return (CR) at the end of the file", self.path,
                             self._lines_before() + 1)

    def _lines_before(self) -> int:
        self.dst.flush()
        count = 0
        with open(self.out, "rb") as fh:
            while block := fh.read(8 << 20):
                count += block.count(b"\n")
        return count


def _gunzip(path: Path, write: Callable[[bytes], object]) -> None:
    """Plain gzip through zlib: each member's CRC32 and length are checked at its end, and a
    member cut short raises EOFError."""
    with gzip.open(path, "rb") as src:
        while block := src.read(4 << 20):
            write(block)


def damage_message(exc: BaseException) -> str:
    """One line for a damaged compressed file."""
    text = str(exc)
    if isinstance(exc, EOFError) or "end-of-stream" in text or "ended before" in text:
        return "truncated gzip data (the file ends inside a compressed member)"
    if "end-of-file marker" in text:
        return "truncated bgzip file: no BGZF end-of-file marker (a cut file)"
    if "CRC" in text or "size check" in text or "Incorrect length" in text:
        return f"corrupt compressed data: {text}"
    return f"corrupt compressed data ({text})"


# Why a plain text that does not end with a newline is refused (the panels' reader says it too)
CUT_SHORT = ("the file does not end with a newline: it looks cut short (a complete text file "
             "ends with one; add it if the file is whole)")


def has_control_bytes(data: bytes) -> bool:
    """Bytes no text line holds (tab, LF and CR aside): binary content, not text in another
    encoding (a Latin-1 'é' is text)."""
    return any(b < 32 and b not in (9, 10, 13) for b in data)


def _looks_like_text(head: bytes) -> bool:
    """Whether a file's first bytes are text (not gzip, BCF or other binary content, which the
    readers refuse with their own message)."""
    return bool(head) and not is_gzip(head) and not head.startswith(b"BCF") and \
        not has_control_bytes(head)


def check_file(path: Path, newline: bool = True) -> None:
    """Cheap up-front check of a BGZF file: the end-of-file marker is there (the blocks' CRCs
    are checked while they are read), and of plain text (unless `newline` is False: a FASTA,
    which htslib reads whole without one and whose index is checked instead): it ends with a
    newline. InputError otherwise."""
    with open(path, "rb") as fh:
        head = fh.read(16)
        if newline and _looks_like_text(head):
            # Plain text has no end-of-file marker: a copy cut inside its last line reads as a
            # shorter, valid file (a call lost, a classification dropped), so the final newline
            # every writer puts there is required. Compressed text is proven whole by its
            # checks, with or without one. (A final lone CR is left to the line readers, which
            # name its line.)
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) not in (b"\n", b"\r"):
                raise InputError(CUT_SHORT, path)
    if is_bgzf(head) and not has_eof_marker(path):
        raise InputError(damage_message(ValueError("no BGZF end-of-file marker")), path)


def open_verified(path: Path) -> IO[bytes]:
    """A binary stream of a file's verified text (plain, gzip or BGZF), for line-by-line reads
    of headers and error messages."""
    with open(path, "rb") as fh:
        head = fh.read(16)
    check_file(path)
    if not is_gzip(head):
        return open(path, "rb")
    return cast(IO[bytes], gzip.open(path, "rb"))


_BLOCK_DATA = 0xFF00  # bytes of text per block, as bgzip writes them


class BgzfWriter:
    """Text written as BGZF blocks (SAM/BAM specification, section 4.1) to a binary stream, so
    an output named .vcf.gz is what `tabix` and `bcftools` expect, not plain text."""

    def __init__(self, out: IO[bytes]):
        self.out = out
        self.pending = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self.pending += data
        while len(self.pending) >= _BLOCK_DATA:
            self._block(bytes(self.pending[:_BLOCK_DATA]))
            del self.pending[:_BLOCK_DATA]
        return len(data)

    def writelines(self, lines: Iterable[bytes | bytearray | memoryview]) -> None:
        for line in lines:
            self.write(line)

    def close(self) -> None:
        """Flush the last block and write the end-of-file marker (the stream stays open)."""
        if self.pending:
            self._block(bytes(self.pending))
            self.pending.clear()
        self.out.write(EOF_MARKER)

    def _block(self, text: bytes) -> None:
        packer = zlib.compressobj(6, zlib.DEFLATED, -15)
        data = packer.compress(text) + packer.flush()
        size = 18 + len(data) + 8  # header with its BC field, deflate data, CRC32 and ISIZE
        self.out.write(b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff\x06\x00BC\x02\x00"
                       + struct.pack("<H", size - 1) + data
                       + struct.pack("<II", zlib.crc32(text), len(text)))
