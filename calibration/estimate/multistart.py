"""Many-start fits on Dask: each start's optimisation is one task, where ``twin.compute`` says.

    with compute_on(ComputePlan(scheduler="tcp://host:8786")):   # or ComputePlan(workers=2)
        record = fit_lab(data, "liver_chip", "individual", n_starts=16)

``fit_individual`` (and so every individual, per-chip, per-subject and pooled fit) hands its
starts to ``best_of_starts``: in this process when no plan is given (or one worker), else as
tasks on a LocalCluster or the lab's scheduler (docs/scale-out.md). The plan is a context
variable, so the fitting code between the command line and the start loop needs no new
argument. The answer does not depend on where the starts ran: the starts are drawn before
any is run, each start is deterministic, and the best is the lowest objective with ties to
the earliest start — the serial loop's rule — whatever order the results come back in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np

from twin.compute import ComputePlan, map_unordered, open_pool

RunOne = Callable[[Any, np.ndarray], tuple[float, Any]]  # (problem, start) → (objective, result); module level
Progress = Callable[[int, int], None]

_PLAN: ContextVar[ComputePlan | None] = ContextVar("chiptwin_fit_compute", default=None)


@contextmanager
def compute_on(plan: ComputePlan | None) -> Iterator[None]:
    """Fits inside the block run their starts as ``plan`` says (None: in this process)."""
    token = _PLAN.set(plan)
    try:
        yield
    finally:
        _PLAN.reset(token)


def current_plan() -> ComputePlan | None:
    return _PLAN.get()


def _distributed(plan: ComputePlan | None, n_starts: int) -> bool:
    if plan is None or n_starts < 2:
        return False
    return plan.scheduler is not None or (plan.workers or 1) > 1


def _run_indexed(run_one: RunOne, problem: Any, index: int, start: np.ndarray) -> tuple[int, float, Any]:
    value, result = run_one(problem, start)
    return index, value, result


def best_of_starts(
    run_one: RunOne,
    problem: Any,
    starts: Sequence[np.ndarray],
    progress: Progress | None = None,
    plan: ComputePlan | None = None,
) -> Any | None:
    """The result of the start with the lowest finite objective (ties: the earliest start); None if none is finite.

    ``run_one`` and ``problem`` travel to the workers (cloudpickle): ``run_one`` must be a module-level
    function. ``plan`` defaults to the one ``compute_on`` set."""
    plan = plan if plan is not None else current_plan()
    arguments = ((run_one, problem, k, x0) for k, x0 in enumerate(starts))
    best: tuple[float, int, Any] | None = None
    done = 0
    with _results(plan, len(starts), arguments) as results:
        for index, value, result in results:
            done += 1
            if progress:
                progress(done, len(starts))
            if np.isfinite(value) and (best is None or (value, index) < best[:2]):
                best = (value, index, result)
    return None if best is None else best[2]


@contextmanager
def _results(plan: ComputePlan | None, n_starts: int, arguments: Iterator[tuple]) -> Iterator[Iterator[tuple]]:
    if not _distributed(plan, n_starts):
        yield (_run_indexed(*args) for args in arguments)  # one at a time, as the serial loop did
        return
    assert plan is not None
    with open_pool(plan) as pool:
        yield map_unordered(pool, _run_indexed, arguments)


__all__ = ["best_of_starts", "compute_on", "current_plan"]
