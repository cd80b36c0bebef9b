"""Where benchmark cells run: in this process, in a local process pool, or on a Ray cluster.

Every executor calls the same cell function (:func:`mbrl.bench.cells.run_cell`), which pins
torch to the cell's thread count, so a cell gives the same numbers on any executor. Executors
yield ``(index, result)`` pairs as cells finish; ``result`` is the function's return value, or
the exception that kept it from returning (a worker that died, a lost Ray node), which the
suite runner records as a failed cell.
"""

from __future__ import annotations

import multiprocessing
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, ClassVar

from mbrl.bench.cells import init_worker

EXECUTOR_NAMES = ("local", "ray", "inline")
"""Names accepted by :func:`make_executor` (and ``mbrl bench --executor``)."""


class ExecutorError(RuntimeError):
    """An executor could not return a cell's result (worker died, node lost, ...)."""


def available_cpus() -> int:
    """CPUs this process may use (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class Executor(ABC):
    """Runs ``fn(item)`` for many items; use as a context manager to release workers.

    ``shares_disk``: whether ``fn`` runs where the caller's files are (this machine), so it
    may write under the caller's directories (the suite's per-cell checkpoints).
    """

    shares_disk: ClassVar[bool] = False

    @abstractmethod
    def map_unordered(
        self, fn: Callable[[Any], Any], items: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]:
        """Yield ``(index into items, fn(item) or the exception that prevented it)``."""

    @abstractmethod
    def describe(self) -> str:
        """One-line description (for logs)."""

    def close(self) -> None:
        """Release workers (idempotent)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InlineExecutor(Executor):
    """Runs items one after another in this process (debugging, tests)."""

    shares_disk: ClassVar[bool] = True

    def map_unordered(
        self, fn: Callable[[Any], Any], items: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]:
        for i, item in enumerate(items):
            try:
                result = fn(item)
            except Exception as err:
                result = err
            yield i, result

    def describe(self) -> str:
        return "the inline executor (this process)"


class LocalExecutor(Executor):
    """A pool of ``workers`` fresh (spawned) processes on this machine.

    Args:
        workers: processes (default: available CPUs // ``threads``, at least 1).
        threads: torch/OpenMP threads per worker (default 1).
    """

    shares_disk: ClassVar[bool] = True

    def __init__(self, workers: int | None = None, threads: int = 1) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if workers is None:
            workers = max(1, available_cpus() // threads)
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        self.workers = workers
        self.threads = threads
        self._pool: ProcessPoolExecutor | None = None

    def map_unordered(
        self, fn: Callable[[Any], Any], items: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]:
        if not items:
            return
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=min(self.workers, len(items)),
                mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker,
                initargs=(self.threads,),
            )
        futures = {self._pool.submit(fn, item): i for i, item in enumerate(items)}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                try:
                    result = fut.result()
                except Exception as err:  # BrokenProcessPool, pickling errors
                    result = err
                yield futures[fut], result

    def describe(self) -> str:
        return f"the local executor ({self.workers} worker processes x {self.threads} thread)"

    def close(self, wait: bool = True) -> None:
        """Shut the pool down; ``wait=False`` (after an error, Ctrl-C or SIGTERM) does not
        wait for running cells: their worker processes are killed (the cells count as not
        run, so the next invocation of a resumable suite runs them again)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # A pool shut down without waiting lets its workers finish their cells, and they
        # outlive this process if it exits first (orphans still using the CPUs).
        if not wait:
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                if proc.is_alive():
                    proc.kill()
        # With its workers gone the pool breaks at once, so waiting returns quickly; it also
        # releases the pool's queues (else the resource tracker warns of leaked semaphores).
        pool.shutdown(wait=True, cancel_futures=True)

    def __exit__(self, *exc: object) -> None:
        self.close(wait=exc[0] is None)


class RayExecutor(Executor):
    """Cells as Ray tasks (``num_cpus=threads`` each) on a Ray cluster.

    Args:
        address: cluster address for ``ray.init`` (``"auto"`` for the cluster this host is
            part of, ``"ray://host:10001"``, ``"10.0.0.1:6379"``); ``None`` starts a fresh
            local Ray instance for this process (``ray.init(address="local")``).
        threads: CPUs reserved per cell (and torch threads it uses; default 1).
        init_kwargs: extra ``ray.init`` arguments (e.g. ``{"num_cpus": 2}`` for a local start).

    Every node needs the same mbrl (and env packages) installed; results travel back to the
    driver, which writes all files, so no shared disk is needed. If Ray was already initialised
    by the caller it is reused and left running.
    """

    def __init__(
        self,
        address: str | None = None,
        threads: int = 1,
        init_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        try:
            import ray
        except ModuleNotFoundError as err:
            raise ValueError(
                "--executor ray needs Ray: pip install 'mbrl[ray]' (or pip install 'ray[default]')"
            ) from err
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self._ray = ray
        self.address = address
        self.threads = threads
        self._owns = False
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "log_to_driver": False, **dict(init_kwargs or {})}
            # "local" starts a fresh instance even if a `ray start` cluster runs on this host.
            ray.init(address=address or "local", **kwargs)
            self._owns = True

    def map_unordered(
        self, fn: Callable[[Any], Any], items: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]:
        ray = self._ray
        remote = ray.remote(num_cpus=self.threads, max_retries=0)(fn)
        refs = {remote.remote(item): i for i, item in enumerate(items)}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    result = ray.get(ref)
                except Exception as err:  # RayTaskError, WorkerCrashedError, node loss
                    result = ExecutorError(f"ray task failed: {err}")
                yield refs[ref], result

    def describe(self) -> str:
        cpus = self._ray.cluster_resources().get("CPU", 0)
        where = self.address or "a local Ray instance"
        return f"the Ray executor ({where}, {cpus:g} CPUs, {self.threads} per cell)"

    def close(self) -> None:
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns = False


def make_executor(
    name: str,
    *,
    workers: int | None = None,
    threads: int = 1,
    ray_address: str | None = None,
    ray_init_kwargs: Mapping[str, Any] | None = None,
) -> Executor:
    """Executor by name: ``local`` (process pool), ``ray`` or ``inline``.

    Raises:
        ValueError: unknown name, bad worker count, or Ray not installed.
    """
    if name == "local":
        return LocalExecutor(workers, threads)
    if name == "ray":
        return RayExecutor(ray_address, threads, ray_init_kwargs)
    if name == "inline":
        return InlineExecutor()
    raise ValueError(f"executor must be one of {EXECUTOR_NAMES}, got {name!r}")


__all__ = [
    "EXECUTOR_NAMES",
    "Executor",
    "ExecutorError",
    "InlineExecutor",
    "LocalExecutor",
    "RayExecutor",
    "available_cpus",
    "make_executor",
]
