"""Individual and pooled fits: one parameter set per subject/chip, or one for all of them.

The objective is −2 log L without the constant (error_models), plus, for MAP fits, a
Gaussian prior on each log parameter. Parameters and residual SDs are optimised on the
log scale, from several starts when asked, with bounds respected.

Two engines: a problem with ``predict_jacobian`` (exact forward sensitivities, e.g. the chip
models) is fitted by Fisher scoring (``calibration.estimate.scoring``) and its covariance step is the
observed Hessian from differences of the exact gradient (one batched run); a problem without
one by L-BFGS-B on central differences and a central-difference Hessian of the objective.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.optimize import minimize

from calibration.errors import FitFailedError, NoObservationsError, UnidentifiableError
from calibration.estimate.covariance_step import HANDOVER_DECREMENT, scoring_with_information
from calibration.estimate.error_models import ErrorModel, Residuals, minus2ll_terms
from calibration.estimate.multistart import best_of_starts
from calibration.estimate.scoring import fisher_scoring
from calibration.io.record import FitRecord
from calibration.uncertainty.information import from_hessian, natural_scale, numerical_hessian

Progress = Callable[[int, int], None]  # (starts done, starts in all)
# parameter sets (all parameters by name) → [(predictions, ∂predictions/∂log θ_names)], one batched run;
# called with ``tight=True`` where differences of its output are taken (the covariance step)
PredictJacobian = Callable[..., list[tuple[np.ndarray, np.ndarray]]]
BOUND_TOLERANCE_LOG = 0.01  # within 1 % of a bound counts as "at the bound"
GRADIENT_TOLERANCE = 0.05


@dataclass
class IndividualProblem:
    """Data of one subject/chip (or pooled data) and a model that predicts every observation."""

    names: tuple[str, ...]  # estimated, in order
    predict: Callable[[dict[str, float]], np.ndarray]  # all parameters by name → predictions at the observations
    dv: np.ndarray
    error: ErrorModel | Residuals  # one model, or one per observable
    fixed: dict[str, float] = field(default_factory=dict)
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    prior: dict[str, tuple[float, float]] = field(default_factory=dict)  # name → (median, log-scale SD)
    model: str = "custom"
    model_version: str = ""
    predict_jacobian: PredictJacobian | None = None  # exact sensitivities: the Fisher-scoring engine

    def __post_init__(self) -> None:
        self.dv = np.asarray(self.dv, dtype=float)
        if isinstance(self.error, ErrorModel):
            self.error = Residuals.single(self.error, self.dv.size)
        if self.dv.size == 0:
            raise NoObservationsError("there are no observations to fit; check the observable and the data window")
        n_free = len(self.names) + len(self.error.parameter_names)
        if n_free > self.dv.size and not self.prior:
            raise UnidentifiableError(
                f"{len(self.names)} parameters and {len(self.error.parameter_names)} error parameter(s) cannot be "
                f"estimated from {self.dv.size} observations; fix some (--fix name=value) or add data"
            )

    @property
    def n_model(self) -> int:
        return len(self.names)

    def parameters(self, x: np.ndarray) -> dict[str, float]:
        values = dict(self.fixed)
        values.update(zip(self.names, np.exp(x[: self.n_model])))
        return values

    def objective(self, x: np.ndarray) -> float:
        """−2 log L (no constant) + prior penalty; +inf where the model cannot be evaluated."""
        with np.errstate(all="ignore"):
            f = self.predict(self.parameters(x))
            sigma = np.exp(x[self.n_model :])
            value = float(np.sum(minus2ll_terms(self.dv, f, self.error.variance(f, sigma))))
        for i, name in enumerate(self.names):
            if name in self.prior:
                median, sd = self.prior[name]
                value += ((x[i] - np.log(median)) / sd) ** 2
        return value if np.isfinite(value) else np.inf

    def log_bounds(self) -> list[tuple[float | None, float | None]]:
        model_bounds = [tuple(np.log(self.bounds[n])) if n in self.bounds else (None, None) for n in self.names]
        return model_bounds + [(None, None)] * len(self.error.parameter_names)


def start_points(
    problem: IndividualProblem, initial: dict[str, float], n_starts: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """The given start, then log-uniform draws within a decade of it (clipped to the bounds)."""
    base = np.log([initial[n] for n in problem.names])
    sigma = np.log(problem.error.default_sigma(problem.dv))
    starts = [np.concatenate([base, sigma])]
    for _ in range(n_starts - 1):
        draw = base + rng.uniform(-np.log(10), np.log(10), base.size)
        for i, (low, high) in enumerate(problem.log_bounds()[: problem.n_model]):
            draw[i] = np.clip(draw[i], -np.inf if low is None else low, np.inf if high is None else high)
        starts.append(np.concatenate([draw, sigma]))
    return starts


def fit_individual(
    problem: IndividualProblem,
    initial: dict[str, float],
    *,
    n_starts: int = 1,
    seed: int = 0,
    progress: Progress | None = None,
    method: str = "individual",
) -> FitRecord:
    """Best of ``n_starts`` bounded quasi-Newton runs, then the covariance step."""
    started = time.perf_counter()
    if problem.predict_jacobian is not None:
        return _fit_scoring(problem, initial, n_starts, seed, progress, method, started)
    starts = start_points(problem, initial, n_starts, np.random.default_rng(seed))
    best = best_of_starts(_lbfgs_start, problem, starts, progress)  # here, or on Dask: calibration.estimate.multistart
    if best is None:
        raise FitFailedError("the model cannot be evaluated at any start; check the initial values and the data")
    return _record(problem, best, method, time.perf_counter() - started)


def _lbfgs_start(problem: IndividualProblem, x0: np.ndarray) -> tuple[float, object]:
    """One bounded quasi-Newton run from ``x0``: (its objective, its result); skipped (inf) where x0 cannot be evaluated."""
    if not np.isfinite(problem.objective(x0)):
        return np.inf, None
    result = minimize(
        problem.objective,
        x0,
        method="L-BFGS-B",
        jac="3-point",
        bounds=problem.log_bounds(),
        options={"maxiter": 500, "ftol": 1e-10, "gtol": 1e-5},
    )
    return float(result.fun), result


def _scoring_start(problem: IndividualProblem, x0: np.ndarray) -> tuple[float, object]:
    result = fisher_scoring(problem, x0, decrement_tol=HANDOVER_DECREMENT)  # finished with the covariance step
    return float(result.value), result


def _fit_scoring(
    problem: IndividualProblem,
    initial: dict[str, float],
    n_starts: int,
    seed: int,
    progress: Progress | None,
    method: str,
    started: float,
) -> FitRecord:
    """Best of ``n_starts`` Fisher-scoring runs on exact sensitivities, then the observed information
    (whose run also checks the best run's last step: ``scoring_with_information``)."""

    starts = start_points(problem, initial, n_starts, np.random.default_rng(seed))
    best = best_of_starts(_scoring_start, problem, starts, progress)
    if best is None:
        raise FitFailedError("the model cannot be evaluated at any start; check the initial values and the data")
    best, hessian = scoring_with_information([problem], [best])[0]
    outcome = _Outcome(best.x, best.value, best.converged, f"no improving step after {best.iterations} iterations")
    return _record(problem, outcome, method, time.perf_counter() - started, hessian=hessian)


@dataclass
class _Outcome:
    x: np.ndarray
    fun: float
    success: bool
    message: str


def _record(
    problem: IndividualProblem, result, method: str, wall_time_s: float, hessian: np.ndarray | None = None
) -> FitRecord:
    names = [*problem.names, *problem.error.parameter_names]
    hessian = numerical_hessian(problem.objective, result.x) if hessian is None else hessian
    uncertainty = from_hessian(hessian, names)
    sd = uncertainty.log_sd if uncertainty.covariance is not None else np.full(len(names), np.nan)
    converged = _converged(problem, result)
    warnings = [] if converged else [f"the optimiser did not converge: {result.message}"]
    warnings += _bound_warnings(problem, result.x) + uncertainty.warnings
    correlation = uncertainty.correlation()
    return FitRecord(
        model=problem.model,
        model_version=problem.model_version,
        method=method,
        converged=converged,
        minus2ll=float(result.fun),
        n_observations=int(problem.dv.size),
        n_subjects=1,
        n_estimated=len(names),
        theta={name: natural_scale(result.x[i], sd[i]) for i, name in enumerate(problem.names)},
        sigma={
            name: float(np.exp(result.x[problem.n_model + i])) for i, name in enumerate(problem.error.parameter_names)
        },
        correlation={"names": names, "matrix": None if correlation is None else correlation.tolist()},
        warnings=warnings,
        wall_time_s=wall_time_s,
        data_selection={"fixed": problem.fixed, "prior": {k: list(v) for k, v in problem.prior.items()}},
    )


def _converged(problem: IndividualProblem, result) -> bool:
    """Success, or a line search that stopped on the objective's numerical noise at a
    vanishing gradient (L-BFGS-B's "ABNORMAL"): 0.05 −2LL units per unit of log-parameter,
    ignoring components pressed against a bound."""
    if result.success:
        return True
    if isinstance(result, _Outcome):
        return False
    gradient = np.asarray(getattr(result, "jac", np.full(result.x.size, np.inf)), dtype=float)
    free = np.ones(result.x.size, dtype=bool)
    for i, (low, high) in enumerate(problem.log_bounds()):
        at_low = low is not None and abs(result.x[i] - low) < BOUND_TOLERANCE_LOG
        at_high = high is not None and abs(result.x[i] - high) < BOUND_TOLERANCE_LOG
        free[i] = not (at_low or at_high)
    return bool(np.all(np.abs(gradient[free]) < GRADIENT_TOLERANCE))


def _bound_warnings(problem: IndividualProblem, x: np.ndarray) -> list[str]:
    warnings = []
    for i, (low, high) in enumerate(problem.log_bounds()[: problem.n_model]):
        for bound, side in ((low, "lower"), (high, "upper")):
            if bound is not None and abs(x[i] - bound) < BOUND_TOLERANCE_LOG:
                warnings.append(
                    f"{problem.names[i]} is at its {side} bound {np.exp(bound):g}; widen the bound or fix the parameter"
                )
    return warnings
