"""DuckDB: the one place that opens connections, quotes SQL literals and maps DuckDB errors.

Error policy (the exit-code contract depends on it):
- a data error while reading an input (invalid CSV line, conversion, gzip damage) is the
  input's fault: InputError (exit 3) naming the file and, where DuckDB gives it, the line;
- the operating system refusing a read or write (no space, permission, read-only file system)
  is EnvironmentIOError (exit 74) naming the path and the reason;
- an interrupt stays an interrupt (KeyboardInterrupt), never an input error;
- anything else (binder, catalog, parser, internal errors) is a bug in our SQL and leaves
  unchanged, so the CLI reports it as an internal error (exit 70).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from varreinterp.errors import EnvironmentIOError, InputError, VarreinterpError

if TYPE_CHECKING:
    import duckdb

# Bulk work stays under the 2 GB budget: DuckDB spills to disk past this.
MEMORY_LIMIT = "1200MB"

_OS_REASONS = ("No space left on device", "Permission denied", "Read-only file system",
               "Disk quota exceeded", "Is a directory", "Not a directory",
               "Too many open files", "Input/output error")


def connect(spill_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory connection. DuckDB spills to `spill_dir` past the memory limit: callers
    pass a private directory inside the store, since spilled pages hold patient data."""
    import duckdb

    con = duckdb.connect()
    # A query slower than two seconds would draw DuckDB's progress bar on stdout, inside the
    # data (a TSV piped to a file), whatever the terminal.
    con.execute("SET enable_progress_bar = false")
    con.execute("SET preserve_insertion_order = true")
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    if spill_dir is not None:
        con.execute(f"SET temp_directory = {quote(str(spill_dir))}")
    else:
        # No place for spilled patient data was given: fail rather than write it to /tmp.
        con.execute("SET temp_directory = ''")
    return con


def quote(value: object) -> str:
    """A SQL string literal (or NULL) for any value; the only quoting helper we use."""
    if value is None:
        return "NULL"
    return "'" + str(value).replace("'", "''") + "'"


def quote_list(values: Sequence[object]) -> str:
    """A DuckDB list literal of string literals: ['a', 'b']."""
    return "[" + ", ".join(quote(v) for v in values) + "]"


def parquet(path: Path | Sequence[Path]) -> str:
    """A read_parquet() table function over one file or several."""
    if isinstance(path, Path):
        return f"read_parquet({quote(str(path))})"
    return f"read_parquet({quote_list([str(p) for p in path])})"


def read_delimited(path: Path | Sequence[Path], columns: Sequence[str], skip: int,
                   header: bool = False) -> str:
    """A DuckDB table function reading tab-separated text (gz or plain) as VARCHAR columns,
    strictly: no quoting, a fixed column count, no type sniffing. Several files are read in
    parallel, in order."""
    cols = ", ".join(f"{quote(c)}: 'VARCHAR'" for c in columns)
    files = quote(str(path)) if isinstance(path, Path) else quote_list([str(p) for p in path])
    return (
        f"read_csv({files}, delim='\t', header={str(header).lower()}, skip={skip}, "
        f"quote='', escape='', auto_detect=false, columns={{{cols}}}, "
        "null_padding=false, strict_mode=true, compression='auto', "
        f"max_line_size={MAX_LINE}, buffer_size={2 * MAX_LINE})"
    )


MAX_POS = 2**31 - 1  # VCF POS is a 32-bit signed integer
# htslib reads lines of any length; DuckDB's default stops at 2 MB. A 10 MB INFO field (long
# structural-variant annotations) must still be read.
MAX_LINE = 64 << 20


def strict_pos_sql(column: str) -> str:
    """SQL: a position written as plain decimal digits in 1..2^31-1, else NULL (refused by the
    caller with its line). try_cast alone would accept '26091499.6' (rounded), '2.60915e7',
    '+26091500', ' 26091500' and '26_091_500'."""
    return (f"(CASE WHEN regexp_full_match({column}, '[0-9]{{1,10}}') AND "
            f"CAST({column} AS BIGINT) BETWEEN 1 AND {MAX_POS} THEN CAST({column} AS BIGINT) END)")


def is_data_error(exc: BaseException) -> bool:
    """A DuckDB error caused by the content of an input, not by our SQL or the system."""
    import duckdb

    if isinstance(exc, duckdb.IOException):
        return _os_reason(str(exc)) is None
    return isinstance(exc, duckdb.InvalidInputException | duckdb.ConversionException
                      | duckdb.OutOfRangeException | duckdb.TypeMismatchException)


def _os_reason(text: str) -> str | None:
    return next((r for r in _OS_REASONS if r in text), None)


def map_error(exc: BaseException, path: Path | None, *, writing: bool = False
              ) -> BaseException | None:
    """The exception to raise instead of a DuckDB error, or None when it is a bug (re-raise
    the original). `path` is the input being read (or the output being written)."""
    import duckdb

    if isinstance(exc, duckdb.InterruptException):
        return KeyboardInterrupt()
    if not isinstance(exc, duckdb.Error):
        return None
    text = str(exc)
    reason = _os_reason(text)
    if isinstance(exc, duckdb.IOException | duckdb.OutOfMemoryException) and (
            reason is not None or writing):
        return EnvironmentIOError(path or _quoted_path(text) or "(DuckDB)",
                                  reason or _first_line(text))
    if path is not None and is_data_error(exc):
        return input_error(text, path)
    return None


def input_error(text: str, path: Path) -> InputError:
    """A DuckDB read error as a one-line InputError, with the file's line number where given."""
    m = re.search(r"[Ll]ine:? (\d+)", text)
    line = int(m.group(1)) if m else None  # DuckDB counts the skipped header lines too
    if "gzip" in text.lower():
        return InputError("truncated or corrupt gzip data", path)
    if "Maximum line size" in text or "maximum_line_size" in text:
        return InputError(f"line longer than {MAX_LINE >> 20} MiB", path, line)
    if "Expected Number of Columns" in text or "column" in text.lower():
        message = "malformed line (wrong number of tab-separated columns)"
    elif "Invalid unicode" in text or "utf" in text.lower():
        message = "not a text file (invalid UTF-8)"
    else:
        message = _first_line(text)
    return InputError(message, path, line)


def _first_line(text: str) -> str:
    stripped = text.strip()
    return stripped.splitlines()[0] if stripped else "unknown error"


def _quoted_path(text: str) -> str | None:
    m = re.search(r'"(/[^"]+)"', text)
    return m.group(1) if m else None


@contextlib.contextmanager
def reading(path: Path, *, writing: bool = False) -> Iterator[None]:
    """Run DuckDB statements that read `path` (or, with writing=True, write it: COPY ... TO),
    mapping their errors by the policy above."""
    try:
        yield
    except VarreinterpError:
        raise
    except Exception as exc:
        mapped = map_error(exc, path, writing=writing)
        if mapped is None:
            raise
        raise mapped from exc


def writing(path: Path) -> contextlib.AbstractContextManager[None]:
    return reading(path, writing=True)


def first_row(con: duckdb.DuckDBPyConnection, sql: str,
              params: Sequence[object] = ()) -> tuple[Any, ...] | None:
    """The first row of a query, or None. (fetchall: fetchone leaves the result open, and the
    connection then refuses the next statement.)"""
    rows = con.execute(sql, list(params)).fetchall()
    return rows[0] if rows else None


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[object] = ()) -> Any:
    """The single value of a one-row, one-column query."""
    row = first_row(con, sql, params)
    return None if row is None else row[0]


def count(con: duckdb.DuckDBPyConnection, relation: str) -> int:
    return int(scalar(con, f"SELECT count(*) FROM {relation}") or 0)
