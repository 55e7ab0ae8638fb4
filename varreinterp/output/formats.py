"""Output formats and streams: a rich table on a terminal, TSV or JSON Lines for pipes and files,
Parquet for analysis, written to stdout or atomically to `-o FILE`. Data goes to stdout; people's
messages go to stderr."""

from __future__ import annotations

import contextlib
import errno
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from enum import Enum, StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from varreinterp.atomic import atomic_file, writing_to
from varreinterp.errors import EnvironmentIOError, UsageError

if TYPE_CHECKING:
    import pandas as pd

    from varreinterp.provenance import Provenance


class Format(StrEnum):
    TABLE = "table"
    TSV = "tsv"
    JSON = "json"
    VCF = "vcf"
    PARQUET = "parquet"


ROW_FORMATS = (Format.TABLE, Format.TSV, Format.JSON)


def resolve_format(fmt: str | None, allowed: Sequence[Format] = ROW_FORMATS) -> Format:
    """The chosen format; default: a rich table on a terminal, TSV when piped."""
    if fmt is None:
        return Format.TABLE if sys.stdout.isatty() else Format.TSV
    try:
        chosen = Format(fmt.lower())
    except ValueError:
        chosen = None
    if chosen not in allowed:
        raise UsageError(f"--format must be one of {', '.join(f.value for f in allowed)}, "
                         f"not {fmt!r}")
    assert chosen is not None
    return chosen


@contextlib.contextmanager
def output_stream(out: Path | None, binary: bool = False) -> Iterator[IO[Any]]:
    """stdout, or a temporary file beside `out` renamed into place only on success, so a failed
    run never leaves a half-written report."""
    if out is None or str(out) == "-":
        buffer = getattr(sys.stdout, "buffer", None)
        if not binary:
            yield sys.stdout
        elif buffer is None:  # a text-only stdout (an embedding caller, a test runner)
            yield cast(IO[bytes], _TextSink(sys.stdout))
        else:
            yield cast(IO[bytes], _WriteAll(buffer))
        return
    if out.exists() and not out.is_file() and not out.is_dir():  # /dev/null, a FIFO
        try:
            fh = open(out, "wb" if binary else "w")  # noqa: SIM115 - closed by writing_to
        except OSError as exc:
            raise EnvironmentIOError.from_os_error(exc, out) from exc
        with writing_to(fh, out):
            yield fh
        return
    with atomic_file(out, binary=binary, commits=True) as fh:  # the output is the result
        yield fh


class _WriteAll:
    """Binary stdout. Unbuffered (python -u, PYTHONUNBUFFERED) it is a raw file, which may
    write only part of what it is given on a full disk; callers (shutil.copyfileobj, the VCF
    writer) do not look at the count, so the rest would be lost without an error. Each write
    loops until every byte is out; a refused write names <stdout> (exit 74)."""

    def __init__(self, raw: IO[bytes]):
        self.raw = raw

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        try:
            while view:
                written = self.raw.write(view)
                if not written:
                    raise OSError(errno.EAGAIN, "standard output accepted no data")
                view = view[written:]
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise EnvironmentIOError.from_os_error(exc, "<stdout>") from exc
        return len(data)

    def writelines(self, lines: Iterable[bytes | bytearray | memoryview]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


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

    def writelines(self, lines: Sequence[bytes]) -> None:
        for line in lines:
            self.write(bytes(line))

    def flush(self) -> None:
        self.stream.flush()


_TSV_BREAKS = re.compile("[\t\n\r]")


def tsv_value(value: object) -> str:
    if value is None or type(value).__name__ == "NAType":  # pandas' missing value
        return ""
    if isinstance(value, float) and value != value:  # NaN from pandas
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return _TSV_BREAKS.sub(" ", str(value))


def tsv_text(frame: pd.DataFrame) -> str:
    """A frame as TSV text under the same rule as `tsv_value`: no quoting (a `"` stays as it
    is, so every command writes a sample or condition name the same way), and a tab or line
    break inside a value becomes a space, so every row has the header's column count."""
    import csv

    clean = frame.copy(deep=False)
    for column in clean.columns:
        values = clean[column]
        if values.dtype == object:  # mixed values (a list, a number among strings): one by one
            clean[column] = values.map(tsv_value)
        elif str(values.dtype) in ("str", "string"):
            clean[column] = values.str.replace(_TSV_BREAKS.pattern, " ", regex=True)
    if len(clean.columns) == 1:  # the csv module refuses an unquoted lone empty field
        lines = [str(clean.columns[0]), *(tsv_value(v) for v in clean.iloc[:, 0])]
        return "".join(line + "\n" for line in lines)
    text: str = clean.to_csv(sep="\t", index=False, na_rep="", lineterminator="\n",
                             quoting=csv.QUOTE_NONE)
    return text


def write_tsv(fh: IO[str], columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    fh.write("\t".join(columns) + "\n")
    for row in rows:
        fh.write("\t".join(tsv_value(row.get(c)) for c in columns) + "\n")


def json_default(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def json_line(obj: object) -> str:
    return json.dumps(obj, default=json_default, sort_keys=False) + "\n"


def write_jsonl(fh: IO[str], rows: Sequence[dict[str, Any]]) -> None:
    for row in rows:
        fh.write(json_line(row))


def stars(n: object) -> str:
    if n is None or (isinstance(n, float) and n != n):
        return "-"
    k = int(str(n))
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


def clean_record(record: dict[str, Any]) -> dict[str, Any]:
    """pandas NaN/NA to None, numpy scalars to Python."""
    import pandas as pd

    out: dict[str, Any] = {}
    for k, v in record.items():
        if v is None or (not isinstance(v, list | dict | str) and pd.isna(v)):
            out[k] = None
        elif hasattr(v, "item"):
            out[k] = v.item()
        else:
            out[k] = v
    return out


_PLAIN = frozenset({str, int, float, bool, type(None), list, dict})


def column_values(column: pd.Series) -> list[Any]:
    """One column as plain Python values, None for every kind of missing value."""
    values = column.to_numpy(dtype=object, na_value=None)
    if set(map(type, values)) <= _PLAIN:  # the usual case, checked at C speed
        return list(values.tolist())
    return [clean_record({"v": v})["v"] for v in values]


def column_records(columns: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Rows as dicts from equal-length columns."""
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows as dicts of plain Python values (what `clean_record` makes of each row),
    converted a column at a time: a row-wise to_dict costs ten times more on large reports."""
    return column_records({str(c): column_values(frame.iloc[:, i])
                           for i, c in enumerate(frame.columns)})


def write_parquet(frame: pd.DataFrame, output: Path | None, prov: Provenance) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if output is None:
        raise UsageError("--format parquet needs -o FILE")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata(prov.metadata())
    with output_stream(output, binary=True) as fh:
        pq.write_table(table, fh)


def write_frame(frame: pd.DataFrame, columns: Sequence[str], fmt: Format, output: Path | None,
                prov: Provenance, *, title: str, caption: str,
                table_columns: Sequence[str] | None = None,
                style_row: Callable[[dict[str, Any]], str | None] | None = None) -> None:
    """Rows to the chosen format. TSV starts with the '#' provenance line; JSON Lines carry the
    provenance on every row; Parquet in its key-value metadata; a table in its caption."""
    rows = frame[list(columns)]
    if fmt is Format.PARQUET:
        write_parquet(rows, output, prov)
        return
    with output_stream(output) as fh:
        if fmt is Format.TSV:
            fh.write(prov.tsv_line() + "\n")
            fh.write(tsv_text(rows))
        elif fmt is Format.JSON:
            extra = row_provenance(prov)
            for record in rows.to_dict(orient="records"):
                fh.write(json_line({**clean_record(record), **extra}))
        else:
            records = frame_records(rows)
            for r in records:
                r["variant"] = variant_label(r)
                for key in ("stars", "stars_before", "stars_after"):
                    if key in r:
                        r[key] = stars(r[key])
            print_table(fh, table_columns or columns, records, title=title,
                        caption=f"{caption}\n{prov.caption()}" if caption else prov.caption(),
                        style_row=style_row)


def row_provenance(prov: Provenance) -> dict[str, Any]:
    """The `provenance_*` fields every JSON Lines row of an annotation carries."""
    return {f"provenance_{k}": v for k, v in prov.flat().items() if k != "snapshot"}


def write_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: Format, *,
               title: str, prov: Provenance, caption: str = "") -> None:
    """A small list of records (snapshots, patients, settings) to stdout, with the provenance
    as every other output carries it: the TSV '#' line, `provenance_*` fields on each JSON
    Lines row, the table's caption."""
    out = sys.stdout
    if fmt is Format.JSON:
        extra = row_provenance(prov)
        write_jsonl(out, [{**r, **extra} for r in rows])
    elif fmt is Format.TSV:
        out.write(prov.tsv_line() + "\n")
        write_tsv(out, columns, rows)
    else:
        print_table(out, columns, rows, title=title,
                    caption="\n".join(c for c in (caption, prov.caption()) if c))
