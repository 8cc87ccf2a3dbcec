"""Where chunks of work run: in this process, on a LocalCluster, or on a lab's Dask scheduler.

One choice, three places, one code path (``ComputePlan``):

- nothing given → in this process (no pool to start; the reference the others must equal);
- ``workers=N`` (N ≥ 2) → a ``distributed.LocalCluster`` of N single-threaded processes,
  started for the call and closed after it;
- ``scheduler="tcp://host:8786"`` → that scheduler's workers (docs/scale-out.md).

``map_unordered`` keeps at most ``2 × workers`` chunks in flight and yields results as they
finish, so memory stays bounded however many chunks there are. Callers make their result
independent of order (seeds per chunk, exact merges), which is what lets a cluster give the
same numbers as this process.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from twin.errors import TwinError

CONNECT_TIMEOUT_S = 10.0  # a scheduler on the lab network answers in milliseconds; 10 s is "not there"
_SCHEMES = ("tcp://", "tls://", "inproc://")  # inproc: a scheduler inside this process (tests)


class ComputeError(TwinError):
    """A compute choice that cannot be honoured: a bad address, no scheduler there, a bad worker count."""


@dataclass(frozen=True)
class ComputePlan:
    """Where to run: ``scheduler`` (an address or a ``distributed.Client``) wins over ``workers``."""

    scheduler: Any = None
    workers: int | None = None

    def describe(self) -> str:
        if self.scheduler is not None:
            return f"Dask scheduler {self.scheduler if isinstance(self.scheduler, str) else 'client'}"
        if self.workers and self.workers > 1:
            return f"LocalCluster of {self.workers} processes"
        return "this process"


class _InlineExecutor(cf.Executor):
    """Runs each task at submit time in this process (one worker: no pool to start)."""

    def submit(self, fn, /, *args, **kwargs) -> cf.Future:
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed back through the future, like a pool would
            future.set_exception(exc)
        return future


@dataclass
class Pool:
    executor: Any  # an Executor or a distributed.Client: both have submit(fn, *args)
    workers: int
    wait: Callable  # cf.wait or distributed.wait: same signature, same (done, not_done) answer
    submit_options: dict = field(default_factory=dict)

    def submit(self, fn: Callable, *args: Any) -> Any:
        return self.executor.submit(fn, *args, **self.submit_options)


def check_address(address: str) -> str:
    """``tcp://host:port`` (or tls://), else one line naming the value and the form."""
    if not isinstance(address, str) or not address.startswith(_SCHEMES) or not address.split("://", 1)[1]:
        raise ComputeError(
            f"--scheduler {address!r} is not a Dask scheduler address; fix: give tcp://HOST:PORT, e.g. tcp://10.0.0.2:8786"
        )
    return address


def _connect(address: str, timeout_s: float) -> Any:
    import distributed

    try:
        return distributed.Client(check_address(address), timeout=timeout_s)
    except (OSError, TimeoutError) as exc:
        raise ComputeError(
            f"cannot reach the Dask scheduler at {address} ({type(exc).__name__}); fix: start one there with "
            f"`dask scheduler --port {_port(address)}` and workers with `dask worker {address}` "
            "(docs/scale-out.md), or leave out --scheduler to run here"
        ) from None


def _port(address: str) -> str:
    tail = address.rsplit(":", 1)[-1]
    return tail if tail.isdigit() else "8786"


def _cluster_workers(client: Any) -> int:
    return max(1, sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()))


@contextmanager
def open_pool(plan: ComputePlan, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> Iterator[Pool]:
    """The pool ``plan`` asks for, closed on exit (a Client passed in is left open)."""
    import distributed

    if plan.workers is not None and plan.workers < 1:
        raise ComputeError(f"--workers {plan.workers}: give at least 1 (1 runs in this process)")
    if plan.scheduler is not None:
        given = isinstance(plan.scheduler, distributed.Client)
        client = plan.scheduler if given else _connect(plan.scheduler, connect_timeout_s)
        try:
            yield Pool(client, _cluster_workers(client), distributed.wait, {"pure": False})  # never deduplicate
        finally:
            if not given:
                client.close()
        return
    if not plan.workers or plan.workers == 1:
        yield Pool(_InlineExecutor(), 1, cf.wait)
        return
    # processes, one thread each: the work is numpy/scipy under the GIL's shadow; no dashboard to bind
    with (
        distributed.LocalCluster(
            n_workers=plan.workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield Pool(client, plan.workers, distributed.wait, {"pure": False})


def map_unordered(pool: Pool, fn: Callable, arguments: Iterable[tuple]) -> Iterator[Any]:
    """``fn(*args)`` for each tuple, results as they finish, at most ``2 × workers`` in flight."""
    todo = iter(arguments)
    pending: set = set()

    def submit_next() -> bool:
        args = next(todo, None)
        if args is not None:
            pending.add(pool.submit(fn, *args))
        return args is not None

    while len(pending) < 2 * pool.workers and submit_next():
        pass
    while pending:
        done, not_done = pool.wait(pending, return_when="FIRST_COMPLETED")
        pending = set(not_done)
        for future in done:
            yield future.result()
            submit_next()


__all__ = ["ComputeError", "ComputePlan", "Pool", "check_address", "map_unordered", "open_pool"]
