"""The one atomic-write helper: write beside the destination, fsync, rename over it. A reader
never sees a half-written file, and a failed or interrupted write leaves nothing behind.

Operating-system refusals (no space, permission, read-only, a directory in the way) become
EnvironmentIOError naming the destination and the reason (exit 74)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from varreinterp.errors import EnvironmentIOError

# Everything written into the store holds or points at patient data: owner-only.
FILE_MODE = 0o600
DIR_MODE = 0o700

# Process state, like the signal handlers it serves (one command runs per process, and
# cli.run resets it at the start of each): was an interrupt requested, and has this command
# passed its commit point?
_STATE: dict[str, bool] = {"interrupted": False, "committed": False}


def interrupt_requested() -> None:
    """The signal handler's note that an interrupt was asked for. The KeyboardInterrupt it
    raises can be swallowed by a C extension that polls for signals (DuckDB ends a query
    early, or finishes it, and only reports an error of its own): the commit point checks
    this note too, so such an interrupt still stops the command before it commits."""
    _STATE["interrupted"] = True


def work_committed() -> None:
    """The command's commit point, called just before its final rename: an interrupt asked
    for earlier stops it here (nothing is published); from here on an interrupt undoes
    nothing, so it is not raised (cli._Signals) and the command finishes and says so."""
    if _STATE["interrupted"]:
        raise KeyboardInterrupt
    _STATE["committed"] = True


def is_committed() -> bool:
    return _STATE["committed"]


def reset_committed() -> None:
    """A new command starts (cli.run): nothing asked for, nothing committed."""
    _STATE.update(interrupted=False, committed=False)


@contextlib.contextmanager
def atomic_file(path: Path, binary: bool = False, mode: int = FILE_MODE,
                commits: bool = False) -> Iterator[IO[Any]]:
    """A file object whose content replaces `path` only when the block ends without error.
    With `commits`, the rename is the command's commit point (`work_committed` just before
    it, so no signal can land between the rename and the latch)."""
    if path.is_dir():
        raise EnvironmentIOError(path, "is a directory")
    with _os_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        _remove_dead_partials(path)
        fd, tmp = tempfile.mkstemp(prefix=f"{_partial_prefix(path)}{_HOST}-{os.getpid()}-",
                                   dir=path.parent)
    done = False
    try:
        with _os_errors(path):
            os.fchmod(fd, mode)
            fh = os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8")
        with writing_to(fh, path, sync=True):
            yield fh
        if commits:
            work_committed()
        with _os_errors(path):
            os.replace(tmp, path)
        done = True
    finally:
        if not done:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _partial_prefix(path: Path) -> str:
    return f".{path.name}.partial-"


# This machine, in partial names: a pid says nothing of a writer on another host sharing the
# folder (NFS), whose partial must not be taken for a dead writer's.
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _remove_dead_partials(path: Path) -> None:
    """The partial copies of `path` left by writers killed with SIGKILL (no handler runs
    then): they hold patient data, and the next write of the same file is the one command
    that knows where they are. A partial whose writer still runs is left alone."""
    from varreinterp.store import pid_alive

    prefix = _partial_prefix(path)
    try:
        names = [e.name for e in os.scandir(path.parent) if e.name.startswith(prefix)]
    except OSError:
        return
    for name in names:
        host, pid, *rest = name[len(prefix):].split("-", 2) + ["", ""]
        if host == _HOST and pid.isdigit() and rest[0] and not pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                os.unlink(path.parent / name)


@contextlib.contextmanager
def writing_to(fh: IO[Any], path: Path, sync: bool = False) -> Iterator[None]:
    """Write to an open file and close it; any failure of the writes, the final flush or the
    close (where a full disk often shows) is an EnvironmentIOError naming `path`. The file is
    closed on every path, its buffer dropped when a write already failed."""
    ok = False
    try:
        try:
            yield
        except OSError as exc:
            if exc.filename is None:  # a write to `fh` itself failed (no space, I/O)
                raise EnvironmentIOError.from_os_error(exc, path) from exc
            raise
        with _os_errors(path):
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
        ok = True
    finally:
        if ok:
            with _os_errors(path):
                fh.close()
        else:
            _close_quietly(fh)


def _close_quietly(fh: IO[Any]) -> None:
    """Close a file whose writes failed: its buffered bytes cannot be written either, and the
    error already raised is the one to report."""
    with contextlib.suppress(OSError, ValueError):
        os.close(fh.fileno())
    with contextlib.suppress(OSError, ValueError):
        fh.close()


@contextlib.contextmanager
def _os_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise EnvironmentIOError.from_os_error(exc, path) from exc


def write_json_atomic(path: Path, payload: object, mode: int = FILE_MODE,
                      commits: bool = False) -> None:
    with atomic_file(path, mode=mode, commits=commits) as fh:
        json.dump(payload, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")
