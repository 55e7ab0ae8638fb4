"""The console script: signals are caught before the (slower) imports, so even a Ctrl-C in
the first tenth of a second ends with one line and 130/143, never a traceback."""

from __future__ import annotations

import signal
import sys


def _ignore_sigint_in_worker_processes() -> None:
    """A terminal's Ctrl-C reaches the whole process group, worker processes included. They
    leave it to the command (which stops them and exits 130 with one line) instead of dying
    with tracebacks. A worker started with multiprocessing's spawn re-runs the console script
    as its main module, so this runs in it early, before it imports the worker code."""
    if "__mp_main__" in sys.modules:  # multiprocessing's name for a child's main module
        signal.signal(signal.SIGINT, signal.SIG_IGN)


_ignore_sigint_in_worker_processes()


def main() -> int:
    received: list[int] = []

    def early(signum: int, frame: object) -> None:
        if not received:
            received.append(signum)
            raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, early)
    try:
        from varreinterp.cli import _Signals, run
    except KeyboardInterrupt:
        sys.stderr.write("varreinterp: interrupted\n")
        return 143 if received and received[0] == signal.SIGTERM else 130
    code = run(signals=_Signals(received[0] if received else None, keep_installed=True))
    # The outcome is decided. At exit the interpreter puts Python-level handlers back to the
    # default (which kills with the signal, exit -2/-15, over a completed command) while it
    # still joins threads and runs atexit hooks; an ignored signal stays ignored.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    if code == 130 and "--debug" not in sys.argv:
        # A Ctrl-C while the Dask cluster was starting leaves it half-built; distributed's
        # own atexit hook then fails to close it and prints a traceback under our one line.
        sys.unraisablehook = lambda unraisable: None
    return code
