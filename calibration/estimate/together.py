"""Many one-chip fits at once: Fisher scoring in lockstep over the chips, one batched run per round.

Chips fitted each alone (``fit_lab(method="individual")``) are independent problems of one model;
their scoring runs advance together (``fisher_scoring_many``), every round's trial points of all
chips in one batched sensitivity solve, and their covariance steps share one solve (which also checks
every chip's last scoring step: ``scoring_with_information``). A batch
costs little more than one chip (the solver's cost is per step), so 50 chips cost a few fits.
"""

from __future__ import annotations

import time
from typing import Mapping, Sequence

import numpy as np

from calibration.errors import FitFailedError
from calibration.estimate.covariance_step import HANDOVER_DECREMENT, scoring_with_information
from calibration.estimate.individual import IndividualProblem, _Outcome, _record, start_points
from calibration.estimate.scoring import fisher_scoring_many
from calibration.io.record import FitRecord


def fit_together(
    problems: Sequence[IndividualProblem],
    initial: Mapping[str, float] | Sequence[Mapping[str, float]],
    method: str = "individual",
) -> list[FitRecord]:
    """One record per problem, as ``fit_individual(problem, initial)`` (one start) would give it;
    ``initial`` is every problem's start, or a sequence of one start per problem."""
    started = time.perf_counter()
    initials = [initial] * len(problems) if isinstance(initial, Mapping) else list(initial)
    starts = [
        start_points(problem, dict(init), 1, np.random.default_rng(0))[0] for problem, init in zip(problems, initials)
    ]
    results = fisher_scoring_many(list(problems), starts, decrement_tol=HANDOVER_DECREMENT)
    for result in results:
        if not np.isfinite(result.value):
            raise FitFailedError("the model cannot be evaluated at any start; check the initial values and the data")
    finished = scoring_with_information(list(problems), results)  # the last steps checked by the covariance run
    results, hessians = [r for r, _ in finished], [h for _, h in finished]
    share = (time.perf_counter() - started) / len(problems)  # the wall time, split evenly
    return [
        _record(
            problem,
            _Outcome(
                result.x, result.value, result.converged, f"no improving step after {result.iterations} iterations"
            ),
            method,
            share,
            hessian=hessian,
        )
        for problem, result, hessian in zip(problems, results, hessians)
    ]
