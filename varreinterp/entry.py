"""The console script: signals are caught before the (slower) imports, so even a Ctrl-C in
the first tenth of a second ends with one line and 130/143, never a traceback."""

from __future__ import annotations

import signal
import sys


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
    return code
