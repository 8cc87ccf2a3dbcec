"""Many-start FOCE-I fits: each start's outer minimisation is one task, where ``twin.compute`` says.

    with compute_on(ComputePlan(scheduler="tcp://host:8786")):   # or ComputePlan(workers=2)
        record = fit_population(model, data, theta0, n_starts=8)

The starts are the given θ and ``n_starts − 1`` deterministic perturbations of it, drawn from
``seed`` before any start runs (ω² and σ as given). Each start builds its own objective, runs
``estimate_foce`` and sends back the estimate with the objective (its modes, warm for the
covariance step); ``calibration.estimate.multistart.best_of_starts`` keeps the lowest OFV, ties to
the earliest start, in whatever order the workers finish. One start runs in this process, as the
single-start fit always did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from calibration.errors import CalibrationError, FitFailedError
from calibration.estimate.foce import Foce
from calibration.estimate.foce_estimate import PopulationEstimate, estimate_foce
from calibration.estimate.multistart import best_of_starts
from calibration.estimate.population_model import PopulationData, PopulationModel

START_SPREAD = float(np.log(3.0))  # log units: the perturbed θ lie within a factor 3 of the given one


@dataclass(frozen=True)
class StartProblem:
    """What a start needs on a worker: the model, the data and the gradient engine ("analytic" or "differences")."""

    model: PopulationModel
    data: PopulationData
    gradient: str


def population_starts(x0: np.ndarray, n_theta: int, n_starts: int, seed: int) -> list[np.ndarray]:
    """``x0`` first, then its log θ moved log-uniformly within ``START_SPREAD`` (the rest as given)."""
    if n_starts < 1:
        raise CalibrationError(f"--starts {n_starts}: give at least 1 (1 = the initial estimates alone)")
    rng = np.random.default_rng(seed)
    starts = [np.array(x0, dtype=float)]
    for _ in range(n_starts - 1):
        x = starts[0].copy()
        x[:n_theta] += rng.uniform(-START_SPREAD, START_SPREAD, n_theta)
        starts.append(x)
    return starts


def run_start(problem: StartProblem, x0: np.ndarray) -> tuple[float, tuple[PopulationEstimate, Foce] | None]:
    """One outer minimisation from ``x0``: (its OFV, (estimate, objective)); (inf, None) where x0 cannot be evaluated."""
    objective = Foce(problem.model, problem.data)
    objective.newton = "exact" if problem.gradient == "analytic" else "expected"
    try:
        estimate = estimate_foce(objective, x0, gradient=problem.gradient)
    except FitFailedError:
        return np.inf, None
    return estimate.ofv, (estimate, objective)


def best_start(
    problem: StartProblem, starts: list[np.ndarray], progress: Callable[[int, int], None] | None = None
) -> tuple[PopulationEstimate, Foce]:
    """The estimate of the lowest OFV (ties: the earliest start) and its objective; here or on Dask."""
    best = best_of_starts(run_start, problem, starts, progress)
    if best is None:
        where = "at the initial estimates" if len(starts) == 1 else f"at any of the {len(starts)} starts"
        raise FitFailedError(f"the objective is not finite {where}; give initial values closer to the data")
    return best
