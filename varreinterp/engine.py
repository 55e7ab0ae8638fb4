"""Where cohort work runs: in this process, on a local cluster of worker processes, or on a
Dask distributed cluster named by its scheduler's address.

Tasks are plain top-level functions of picklable arguments that read the store and write only
to a staging folder inside it; the caller commits their output under the store lock, so a
lost worker (Dask retries its task elsewhere), a killed run or a failed task changes nothing
that was published. A remote cluster must see the store at the same path: `check_store`
refuses one whose workers do not.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from varreinterp.errors import EnvironmentIOError, UsageError

log = logging.getLogger("varreinterp")

T = TypeVar("T")
R = TypeVar("R")

# A local cluster costs about 1.5 s (start, and each worker imports the readers again): worth
# it from this much input on, when nobody chose.
LOCAL_CLUSTER_MIN_BYTES = 64 << 20
TASK_RETRIES = 2  # a task that fails or whose worker dies is run again elsewhere


@dataclass(frozen=True)
class EngineChoice:
    """What the user asked for: a scheduler address, a worker count, or neither (auto)."""

    scheduler: str | None = None
    workers: int | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise UsageError(f"--workers must be at least 1, got {self.workers}")
        if self.scheduler is not None and not self.scheduler.strip():
            raise UsageError("--scheduler: empty address")


@dataclass(frozen=True)
class EngineInfo:
    """What ran a job: recorded in run.json, runs.jsonl and `cohort status`."""

    engine: str  # "in-process" | "local-cluster" | "dask"
    workers: int
    scheduler: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"engine": self.engine, "workers": self.workers, "scheduler": self.scheduler}


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else (os.cpu_count() or 1))


class Engine:
    """Maps a task function over items; results come back in the items' order."""

    def __init__(self, info: EngineInfo, client: Any = None):
        self.info = info
        self._client = client

    def map(self, fn: Callable[[T], R], items: Sequence[T],
            progress: Callable[[int, int], None] | None = None) -> list[R]:
        if self._client is None:
            out = []
            for n, item in enumerate(items, start=1):
                out.append(fn(item))
                if progress:
                    progress(n, len(items))
            return out
        return self._map_dask(fn, items, progress)

    def _map_dask(self, fn: Callable[[T], R], items: Sequence[T],
                  progress: Callable[[int, int], None] | None) -> list[R]:
        from distributed import as_completed

        futures = self._client.map(fn, list(items), retries=TASK_RETRIES, pure=False)
        try:
            completed = as_completed(futures, loop=self._client.loop)  # type: ignore[no-untyped-call]
            for done, _ in enumerate(completed, start=1):
                if progress:
                    progress(done, len(futures))
            # The first failure (after its retries) is raised as the task raised it.
            return list(self._client.gather(futures))
        finally:
            for f in futures:
                f.cancel()


@contextmanager
def engine(choice: EngineChoice, tasks: int, store_root: Path,
           work_bytes: int = 0) -> Iterator[Engine]:
    """The engine for `tasks` tasks over `work_bytes` of input: the named scheduler; else a
    local cluster of `choice.workers` processes (default: one per core, when the work is
    worth starting one for); else this process."""
    if choice.scheduler:
        with _remote(choice.scheduler, store_root) as eng:
            yield eng
        return
    workers = choice.workers or default_workers()
    if choice.workers is None and work_bytes < LOCAL_CLUSTER_MIN_BYTES:
        workers = 1
    workers = min(workers, max(tasks, 1))
    if workers == 1:
        yield Engine(EngineInfo("in-process", 1))
        return
    with _local(workers) as eng:
        yield eng


@contextmanager
def _local(workers: int) -> Iterator[Engine]:
    from distributed import Client, LocalCluster

    cluster = LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
        host="127.0.0.1", silence_logs=logging.ERROR)
    with cluster, Client(cluster, set_as_default=False) as client:  # type: ignore[no-untyped-call]
        yield Engine(EngineInfo("local-cluster", workers), client)


@contextmanager
def _remote(address: str, store_root: Path) -> Iterator[Engine]:
    from distributed import Client
    from distributed.comm.addressing import parse_address
    from distributed.comm.registry import get_backend

    try:
        get_backend(parse_address(address, strict=True)[0])
    except ValueError as exc:
        raise UsageError(f"--scheduler {address}: not a Dask scheduler address ({exc}); "
                         "e.g. tcp://host:8786") from None
    try:
        client = Client(address, timeout="10s",  # type: ignore[no-untyped-call]
                        set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise EnvironmentIOError(address, f"cannot reach the Dask scheduler ({exc})") from exc
    except ValueError as exc:
        raise UsageError(f"--scheduler {address}: {exc}") from None
    with client:
        workers = len(client.scheduler_info().get("workers", {}))
        if not workers:
            raise EnvironmentIOError(address, "the Dask scheduler has no workers")
        check_store(client, store_root)
        yield Engine(EngineInfo("dask", workers, address), client)


def check_store(client: Any, store_root: Path) -> None:
    """Every worker must see this store at the same path (a shared file system): a token
    written here is read back on each worker."""
    token = secrets.token_hex(16)
    probe = store_root / "tmp" / f"engine-probe-{token}"
    probe.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    probe.write_text(token)
    try:
        seen = client.run(_read_probe, str(probe))
    finally:
        probe.unlink(missing_ok=True)
    blind = sorted(addr for addr, value in seen.items() if value != token)
    if blind:
        raise UsageError(
            f"the Dask workers {', '.join(blind)} cannot see the store at {store_root}: the "
            "store must be on a file system every worker mounts at the same path")


def _read_probe(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None
