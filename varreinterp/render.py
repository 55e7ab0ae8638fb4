"""Output: rows as a rich table (terminal), TSV or JSON Lines (pipes and files), written to stdout
or atomically to -o FILE. Data goes to stdout; people's messages go to stderr."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from enum import Enum
from pathlib import Path
from typing import IO, Any, cast


def resolve_format(fmt: str | None) -> str:
    """Default: a rich table on a terminal, TSV when piped."""
    if fmt:
        return fmt
    return "table" if sys.stdout.isatty() else "tsv"


@contextlib.contextmanager
def output_stream(out: Path | None, binary: bool = False) -> Iterator[IO[Any]]:
    """stdout, or a temporary file beside `out` renamed into place only on success, so a failed
    run never leaves a half-written report."""
    if out is None or str(out) == "-":
        if not binary:
            yield sys.stdout
        elif hasattr(sys.stdout, "buffer"):
            yield sys.stdout.buffer
        else:  # a text-only stdout (an embedding caller, a test runner): UTF-8 text
            yield cast(IO[bytes], _TextSink(sys.stdout))
        return
    if out.exists() and not out.is_file():  # /dev/null and other special files
        with open(out, "wb" if binary else "w") as fh:
            yield fh
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class _TextSink:
    """Bytes written to a text stream."""

    def __init__(self, stream: IO[str]):
        import codecs

        self.stream = stream
        # a multi-byte character may straddle two writes
        self.decoder = codecs.getincrementaldecoder("utf-8")()

    def write(self, data: bytes) -> int:
        self.stream.write(self.decoder.decode(data))
        return len(data)

    def flush(self) -> None:
        self.stream.flush()


def tsv_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value != value:  # NaN from pandas
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value).replace("\t", " ").replace("\n", " ")


def write_tsv(fh: IO[str], columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    fh.write("\t".join(columns) + "\n")
    for row in rows:
        fh.write("\t".join(tsv_value(row.get(c)) for c in columns) + "\n")


def json_default(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    if hasattr(value, "isoformat"):
        return value.isoformat()  # type: ignore[no-any-return]
    if hasattr(value, "item"):  # numpy scalars
        return value.item()  # type: ignore[no-any-return]
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def json_line(obj: object) -> str:
    return json.dumps(obj, default=json_default, sort_keys=False) + "\n"


def write_jsonl(fh: IO[str], rows: Sequence[dict[str, Any]]) -> None:
    for row in rows:
        fh.write(json_line(row))


def stars(n: object) -> str:
    if n is None or (isinstance(n, float) and n != n):
        return "-"
    k = int(n)  # type: ignore[call-overload]
    return "★" * k + "☆" * (4 - k)


def variant_label(row: dict[str, Any]) -> str:
    return f"{row.get('chrom')}:{row.get('pos')} {row.get('ref')}>{row.get('alt')}"


def print_table(
    fh: IO[str],
    columns: Sequence[str],
    rows: Sequence[dict[str, Any]],
    *,
    title: str | None = None,
    caption: str | None = None,
    style_row: Callable[[dict[str, Any]], str | None] | None = None,
) -> None:
    from rich.console import Console
    from rich.table import Table

    # Off a terminal rich would assume 80 columns; a file or pipe gets room for the data.
    width = None if getattr(fh, "isatty", lambda: False)() else 200
    console = Console(file=fh, soft_wrap=False, width=width)
    table = Table(title=title, caption=caption, caption_justify="left")
    for c in columns:
        table.add_column(c, overflow="fold")
    for row in rows:
        table.add_row(*(tsv_value(row.get(c)) for c in columns),
                      style=style_row(row) if style_row else None)
    console.print(table)
