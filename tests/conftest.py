"""Shared fixtures. Real public files live in ../shared/data beside the project; tests that need
them skip with a reason when that folder is absent (e.g. on a user's machine)."""

from __future__ import annotations

import io
import os
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("VARREINTERP_SHARED_DATA", ROOT.parent / "shared" / "data"))
SAMPLES = ROOT / "sample_vcfs"
# The test releases are years old: the stale-release warning (tested on its own in
# test_lab_routine.py) would otherwise add a line to every command's stderr.
os.environ.setdefault("VARREINTERP_STALE_AFTER_DAYS", "1000000")
# A config file of the machine running the tests must not leak in.
os.environ["XDG_CONFIG_HOME"] = "/nonexistent/varreinterp-tests"
os.environ.pop("VARREINTERP_CONFIG", None)
MAPPINGS = ROOT / "examples" / "mappings"


def tsv_lines(out: str) -> list[str]:
    """The lines of a TSV a command printed, after the '#' provenance line every TSV starts
    with (checked here)."""
    first, *rest = out.splitlines()
    assert first.startswith("#tool=varreinterp tool_version="), first
    return rest


def shared(relative: str) -> Path:
    """A file from ../shared/data, or skip the test with the reason."""
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"real test data not available: {path} (../shared/data is absent)")
    return path


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def invoke(store: Path | None, *args: str | Path) -> CliResult:
    """The CLI in-process against `store` (usable from module-scoped fixtures too)."""
    from varreinterp.cli import run

    argv = [str(a) for a in args]
    if store is not None:
        argv = ["--store", str(store), *argv]
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = run(argv)
    return CliResult(int(code), out.getvalue(), err.getvalue())


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def cli(store_dir: Path):
    """Run the CLI in-process against a private store: cli("snapshot", "list", ...)."""
    def call(*args: str | Path, store: Path | None = store_dir) -> CliResult:
        return invoke(store, *args)

    return call
