"""Run a virtual population in chunks on a local process pool or a Dask cluster — one code path.

``ProcessPoolExecutor`` and ``dask.distributed.Client`` share the futures API (``submit``,
``wait(…, FIRST_COMPLETED)``, ``result``), so ``_Pool`` only hides which ``wait`` to call.
At most ``2 × workers`` chunks are in flight and each comes back as a fixed-size summary,
so memory stays bounded however large N is. Merging is exact and order-free (see
``summaries``), and patients are seeded by block (see ``population``): the summary is the
same for any chunk size, worker count or executor.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from twin.drugs import Drug
from twin.errors import InvalidValueError
from twin.patients.dosing import Target
from twin.patients.population import BLOCK, PopulationAccumulator, PopulationSpec, simulate_chunk
from twin.patients.regimen import Regimen

Progress = Callable[[int, int], None]  # (patients done, patients in total)


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
class _Pool:
    executor: Any  # cf.Executor or distributed.Client
    workers: int
    wait: Callable  # cf.wait or distributed.wait: same signature, same (done, not_done) answer
    submit_options: dict = field(default_factory=dict)

    def submit(self, fn, *args):
        return self.executor.submit(fn, *args, **self.submit_options)


@contextmanager
def _open_pool(dask: Any, max_workers: int | None) -> Iterator[_Pool]:
    """``dask`` None → local processes; a Client or a scheduler address → that cluster."""
    if dask is None:
        workers = max_workers or os.cpu_count() or 1
        if workers == 1:
            yield _Pool(_InlineExecutor(), 1, cf.wait)
            return
        # spawn, not fork: forking a process that runs threads (Dask, pytest) can deadlock
        with cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as executor:
            yield _Pool(executor, workers, cf.wait)
        return
    import distributed

    client = dask if isinstance(dask, distributed.Client) else distributed.Client(dask)
    try:
        workers = max(1, sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()))
        yield _Pool(client, workers, distributed.wait, {"pure": False})  # pure=False: never deduplicate tasks
    finally:
        if client is not dask:
            client.close()


@dataclass
class PopulationSummary:
    drug: str
    regimen: str
    seed: int
    accumulator: PopulationAccumulator
    target: Target | None

    @property
    def n(self) -> int:
        return self.accumulator.n

    @property
    def pta(self) -> float | None:
        return None if self.target is None else self.accumulator.attained / self.n

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "drug": self.drug,
            "regimen": self.regimen,
            "n": self.n,
            "seed": self.seed,
            "metrics": {k: s.describe() for k, s in sorted(self.accumulator.summaries.items())},
        }
        if self.target is not None:
            out["target"] = {
                "metric": self.target.metric,
                "low": self.target.low,
                "high": self.target.high,
                "probability_of_target_attainment": self.pta,
            }
        if "toxicity_margin" in self.accumulator.summaries:
            out["fraction_toxicity_margin_below_1"] = self.accumulator.margin_below_1 / self.n
        return out


def run_population(
    drug: Drug,
    regimen: Regimen,
    n: int,
    *,
    seed: int = 0,
    spec: PopulationSpec | None = None,
    target: Target | None = None,
    chunk_size: int = 8 * BLOCK,
    dask: Any = None,
    max_workers: int | None = None,
    progress: Progress | None = None,
) -> PopulationSummary:
    """Exposure, PTA and toxicity-margin summaries of ``n`` virtual patients.

    ``chunk_size`` (patients per task) is rounded up to whole blocks of ``BLOCK``;
    ``dask`` is a ``distributed.Client`` or a scheduler address (None: local processes,
    ``max_workers`` of them; 1 runs in this process).
    """
    if n < 1:
        raise InvalidValueError(f"population size must be at least 1; got {n}")
    if chunk_size < 1:
        raise InvalidValueError(f"chunk size must be at least 1; got {chunk_size}")
    spec = spec or PopulationSpec()
    blocks_per_chunk = -(-chunk_size // BLOCK)
    n_blocks = -(-n // BLOCK)
    starts = iter(range(0, n_blocks, blocks_per_chunk))
    total = PopulationAccumulator()
    with _open_pool(dask, max_workers) as pool:
        pending: set = set()

        def submit_next() -> bool:
            start = next(starts, None)
            if start is not None:
                pending.add(
                    pool.submit(
                        simulate_chunk,
                        drug,
                        regimen,
                        spec,
                        target,
                        seed,
                        n,
                        start,
                        min(blocks_per_chunk, n_blocks - start),
                    )
                )
            return start is not None

        while len(pending) < 2 * pool.workers and submit_next():
            pass
        while pending:
            done, pending = pool.wait(pending, return_when="FIRST_COMPLETED")
            pending = set(pending)
            for future in done:
                total.merge(future.result())
                if progress is not None:
                    progress(total.n, n)
                submit_next()
    return PopulationSummary(drug.name, str(regimen), seed, total, target)
