"""One exception hierarchy; the CLI maps it to exit codes in one place (`cli.run`).

The table of exit codes lives here and in the README; nothing else chooses a process status."""

from __future__ import annotations

import errno
from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    OK = 0
    CHANGES_FOUND = 1  # only with --exit-code
    USAGE = 2
    BAD_INPUT = 3
    STORE = 4
    LOCKED = 5
    PARTIAL = 6  # reanalyze: some patients could not be reanalyzed (listed)
    STALE = 7  # --fail-if-stale: the newest snapshot is older than stale_after_days
    NOTIFY_FAILED = 8  # the report was delivered, a notification was not
    NETWORK = 69  # sysexits EX_UNAVAILABLE: a download failed (after retries)
    INTERNAL = 70  # sysexits EX_SOFTWARE: a bug
    IO_ERROR = 74  # sysexits EX_IOERR: disk full, permission, read-only, output is a directory
    INTERRUPTED = 130  # 128 + SIGINT
    BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader went away (`| head`)
    TERMINATED = 143  # 128 + SIGTERM


class VarreinterpError(Exception):
    exit_code: ExitCode = ExitCode.INTERNAL

    def one_line(self) -> str:
        return " ".join(str(self).split())


class UsageError(VarreinterpError):
    exit_code = ExitCode.USAGE


class InputError(VarreinterpError):
    """Bad input file or content. Names the file and, where known, the line."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.path = str(path) if path is not None else None
        self.line = line
        self.message = message
        where = ""
        if self.path:
            where = f"{self.path}:{line}: " if line else f"{self.path}: "
        super().__init__(where + message)


class AssemblyMismatchError(InputError):
    pass


class UnknownTermError(InputError):
    pass


class StoreError(VarreinterpError):
    exit_code = ExitCode.STORE


class SnapshotNotFoundError(StoreError):
    pass


class LockHeldError(VarreinterpError):
    exit_code = ExitCode.LOCKED


class StaleSnapshotError(VarreinterpError):
    exit_code = ExitCode.STALE


class NetworkError(VarreinterpError):
    """A download failed after its retries (connection refused or reset, timeout, HTTP 5xx)."""

    exit_code = ExitCode.NETWORK


class EnvironmentIOError(VarreinterpError):
    """The operating system refused a read or write: no space, permission, read-only file
    system, a directory where a file was expected. Names the path and the OS reason."""

    exit_code = ExitCode.IO_ERROR

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    @classmethod
    def from_os_error(cls, exc: OSError, path: str | Path | None = None) -> EnvironmentIOError:
        where = path if path is not None else (exc.filename or "(unknown path)")
        return cls(where, exc.strerror or str(exc))


_ENVIRONMENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT,
                       errno.EIO, errno.EMFILE, errno.ENFILE}


def store_os_error(exc: OSError, path: str | Path, what: str) -> VarreinterpError:
    """An OSError on a store path: the system refusing (permission, space, I/O) is an
    environment error (74); anything else means the store is not as expected (4)."""
    if exc.errno in _ENVIRONMENT_ERRNOS:
        return EnvironmentIOError.from_os_error(exc, path)
    return StoreError(f"{path}: {what} ({exc.strerror or exc})")
