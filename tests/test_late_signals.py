"""A signal on either side of a command's commit point, delivered deterministically.

The commit point is the latch set just before the final rename (the snapshot folder's, the
registry's, the output file's). A SIGINT before it undoes the command: exit 130 and the
store as it was. After it nothing is undone: the rename happens, the command completes with
exit 0 and one line saying the signal came late. (test_interrupts.py covers random moments
in a subprocess.)
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from conftest import SAMPLES, invoke

import varreinterp.store
from varreinterp import atomic

RELEASE = SAMPLES / "clinvar_GRCh38_2024-06-02.vcf"
SNAPSHOT = "clinvar-GRCh38-2024-06-02"
PATIENT = SAMPLES / "patient_single.vcf.gz"


REAL_LATCH = atomic.work_committed


def _signal_at_commit(monkeypatch: pytest.MonkeyPatch, module: object, before: bool) -> None:
    def committed() -> None:
        if before:
            os.kill(os.getpid(), signal.SIGINT)
        REAL_LATCH()
        if not before:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(module, "work_committed", committed)


def test_signal_just_before_the_snapshot_commit_undoes_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store"
    _signal_at_commit(monkeypatch, varreinterp.store, before=True)
    run = invoke(store, "snapshot", "add", RELEASE)
    assert run.code == 130, run.err
    assert "interrupted" in run.err
    monkeypatch.undo()
    assert not (store / "snapshots" / SNAPSHOT).exists()
    assert SNAPSHOT not in invoke(store, "snapshot", "list", "-f", "tsv").out


def test_signal_after_the_snapshot_commit_completes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store"
    _signal_at_commit(monkeypatch, varreinterp.store, before=False)
    run = invoke(store, "snapshot", "add", RELEASE)
    assert run.code == 0, run.err
    assert "signal received after the work was committed" in run.err
    monkeypatch.undo()
    listed = invoke(store, "snapshot", "list", "-f", "tsv")
    assert SNAPSHOT in listed.out
    assert invoke(store, "snapshot", "verify").code == 0


def test_signal_after_the_output_rename_keeps_the_output(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store"
    assert invoke(store, "snapshot", "add", RELEASE).code == 0
    expected = invoke(store, "annotate", PATIENT, "--snapshot", SNAPSHOT, "-f", "tsv")
    assert expected.code == 0, expected.err
    out = tmp_path / "out.tsv"
    _signal_at_commit(monkeypatch, atomic, before=False)
    run = invoke(store, "annotate", PATIENT, "--snapshot", SNAPSHOT, "-f", "tsv", "-o", out)
    assert run.code == 0, run.err
    assert "signal received after the work was committed" in run.err
    assert out.read_text().splitlines()[1:] == expected.out.splitlines()[1:]


def test_signal_just_before_the_output_rename_leaves_no_output(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store"
    assert invoke(store, "snapshot", "add", RELEASE).code == 0
    out = tmp_path / "out.tsv"
    _signal_at_commit(monkeypatch, atomic, before=True)
    run = invoke(store, "annotate", PATIENT, "--snapshot", SNAPSHOT, "-f", "tsv", "-o", out)
    assert run.code == 130, run.err
    assert list(tmp_path.glob("*out.tsv*")) == []


def test_the_latch_belongs_to_one_command(tmp_path: Path) -> None:
    # A command that committed must not leave later in-process commands deaf to Ctrl-C.
    store = tmp_path / "store"
    assert invoke(store, "snapshot", "add", RELEASE).code == 0
    assert atomic.is_committed()
    assert invoke(store, "snapshot", "list").code == 0
    assert not atomic.is_committed()


def test_an_interrupt_swallowed_before_the_commit_still_stops_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # DuckDB polls for signals inside a query and may finish it, or fail with its own error,
    # leaving no KeyboardInterrupt in flight: the note the handler left must stop the commit.
    store = tmp_path / "store"

    def swallowed_then_commit() -> None:
        atomic.interrupt_requested()  # what the handler noted; its exception went nowhere
        REAL_LATCH()

    monkeypatch.setattr(varreinterp.store, "work_committed", swallowed_then_commit)
    run = invoke(store, "snapshot", "add", RELEASE)
    assert run.code == 130, run.err
    monkeypatch.undo()
    assert not (store / "snapshots" / SNAPSHOT).exists()


def test_an_interrupt_inside_a_finalizer_prints_no_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A signal landing in a weakref callback or __del__ raises where Python can only print
    # "Exception ignored in ..." with a traceback (seen in CI). The handler's note still
    # stops the command at its commit point: one line, exit 130, nothing stored.
    store = tmp_path / "store"

    class Finalizer:
        def __del__(self) -> None:
            atomic.interrupt_requested()
            raise KeyboardInterrupt

    def interrupted_in_a_finalizer() -> None:
        Finalizer()  # collected at once: its KeyboardInterrupt is "unraisable"
        REAL_LATCH()

    monkeypatch.setattr(varreinterp.store, "work_committed", interrupted_in_a_finalizer)
    run = invoke(store, "snapshot", "add", RELEASE)
    assert run.code == 130, run.err
    assert [line for line in run.err.splitlines() if "INFO" not in line] == \
        ["varreinterp: interrupted"], run.err
    monkeypatch.undo()
    assert not (store / "snapshots" / SNAPSHOT).exists()
