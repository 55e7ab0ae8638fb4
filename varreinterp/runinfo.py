"""What this process was asked to do, for provenance stamps (set by the CLI entry point; library
callers may set it too)."""

from __future__ import annotations

import shlex
import sys

_argv: list[str] | None = None


def set_command_line(argv: list[str]) -> None:
    global _argv
    _argv = ["varreinterp", *argv]


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in (_argv if _argv is not None else sys.argv))
