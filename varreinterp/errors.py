"""One exception hierarchy; the CLI maps it to exit codes in one place (`cli.run`)."""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    OK = 0
    CHANGES_FOUND = 1  # only with --exit-code
    USAGE = 2
    BAD_INPUT = 3
    STORE = 4
    LOCKED = 5
    INTERNAL = 70
    INTERRUPTED = 130


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
