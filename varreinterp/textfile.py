"""Reading text inputs: line by line (plain, gzip or bgzip) for headers and error messages, and
the one entry point of bulk columnar reading (`parse_table`).

Line endings follow htslib: a line may end in LF or CRLF (the CR is dropped), a file may mix
them (bgzf.decompressed_text hands the columnar reader LF text only); a lone CR inside a line
is refused, since readers disagree on where such a line ends. A UTF-8 byte-order mark is refused
(htslib would not see the header after it)."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from varreinterp import db
from varreinterp.bgzf import check_file, has_control_bytes
from varreinterp.errors import InputError

BOM = "\ufeff"


def open_text(path: Path, newline: str | None = None) -> Iterator[str]:
    """Lines of a plain or gzip/bgzip file, with decompression errors as InputError. With
    newline="\\n", only LF ends a line (a lone CR stays inside it), as in the columnar readers."""
    try:
        check_file(path)  # a BGZF file cut at a block boundary reads as complete, and a
        # plain one cut inside a line
        with open(path, "rb") as probe:
            magic = probe.read(2)
        if magic == b"\x1f\x8b":
            with gzip.open(path, "rt", encoding="utf-8", errors="strict",
                           newline=newline) as fh:
                yield from _no_bom(fh, path)
        else:
            with open(path, encoding="utf-8", errors="strict", newline=newline) as fh:
                yield from _no_bom(fh, path)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"cannot read file ({_reason(exc)})", path) from exc
    except UnicodeDecodeError as exc:
        # The decoder reads ahead of the lines handed out: find the line the byte is on.
        line, raw = _first_undecodable_line(path)
        if line is None or (line == 1 and has_control_bytes(raw[:4096])):
            raise InputError("not a text file (binary content)", path) from exc
        raise InputError("not a text file (invalid UTF-8)", path, line) from exc


def _first_undecodable_line(path: Path) -> tuple[int | None, bytes]:
    from varreinterp.bgzf import open_verified

    try:
        with open_verified(path) as fh:
            for n, raw in enumerate(fh, start=1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError:
                    return n, raw
    except (OSError, EOFError, zlib.error, InputError):
        pass
    return None, b""



def header_lines_of(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of the '#' lines at the top of a text file, each decoded on its
    own (a decoder reading ahead would refuse a bad byte in the data without its line), with
    LF as the only line end. A line that is not valid UTF-8 is an InputError naming it."""
    from varreinterp.bgzf import open_verified

    try:
        with open_verified(path) as fh:
            for n, raw in enumerate(fh, start=1):
                if n == 1 and raw.startswith(BOM.encode()):
                    raise InputError("the file starts with a UTF-8 byte-order mark (BOM): save "
                                     "it without one", path, 1)
                if not raw.startswith(b"#"):
                    if n == 1:  # what the file is not: text, or a header
                        _decoded(raw, path, n, "not a text file (binary content)")
                    return
                yield n, _decoded(raw, path, n, "not a text file (invalid UTF-8)")
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"cannot read file ({_reason(exc)})", path) from exc


def _decoded(raw: bytes, path: Path, line: int, message: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(message, path, line if "UTF-8" in message else None) from None


def _no_bom(lines: Iterator[str], path: Path) -> Iterator[str]:
    first = next(lines, None)
    if first is None:
        return
    if first.startswith(BOM):
        raise InputError("the file starts with a UTF-8 byte-order mark (BOM): save it without "
                         "one", path, 1)
    yield first
    yield from lines


def parse_table(path: Path, text: Path, columns: list[str], skip: int,
                create: Callable[[str], object]) -> None:
    """Run `create(reader_sql)` over the data lines of `text` (the verified LF text of input
    `path`, from bgzf.decompressed_text), DuckDB errors mapped to `path`."""
    with db.reading(path):
        create(db.read_delimited(text, columns, skip=skip))


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, EOFError) or "end-of-stream" in text or "Compressed file ended" in text:
        return "truncated gzip"
    return getattr(exc, "strerror", None) or text


def raw_field(path: Path, line: int, index: int) -> str | None:
    """Field `index` of file line `line` (1-based), for error messages only."""
    for n, text in enumerate(open_text(path), start=1):
        if n == line:
            parts = text.rstrip("\r\n").split("\t")
            return parts[index] if index < len(parts) else None
    return None


def header_lines(path: Path) -> tuple[list[str], int]:
    """The '#' lines at the top and their count (the data starts right after them). Only LF
    ends a line, as in the readers that skip this count: a CR alone would otherwise count as
    a line here and hide the first record there, so it is refused on its line (and a NUL, which
    the readers of the whole text refuse, is refused here too)."""
    header: list[str] = []
    for n, line in header_lines_of(path):
        text = line[:-2] if line.endswith("\r\n") else line.removesuffix("\n")
        if "\r" in text:
            raise InputError("stray carriage return (CR) inside a line", path, n)
        if "\0" in text:  # readers disagree on what follows a NUL: refuse it, as bgzf.py does
            raise InputError("a NUL byte inside a line", path, n)
        header.append(text)
    return header, len(header)
