"""Sequential update: as readings arrive, the fit follows the chip, warm-started from the last one.

    factory = LabProblemFactory(rows_so_far, estimate=("vmax", "km", "ocr"))
    tracker = SequentialFit(factory, fit_individual(factory(), start))
    record = tracker.update(new_rows)          # FitRecord of all the data so far

Each update is a few Fisher-scoring (Gauss–Newton for the full −2LL, residual SDs included)
iterations from the previous estimate: the gradient and the expected information come from
one forward-difference Jacobian of the predictions (n_model + 1 model runs per iteration; the
residual-SD derivatives cost no run; the twin's forward sensitivities cost about seven such
Jacobians per run for liver_chip, so they are not used here), within a trust region (Levenberg
steps of halving scaled length) that holds the parameter bounds. Steps longer than a few percent
get geodesic acceleration from one extra run: when data sit in a sloppy, curved valley (liver_chip:
km against kon/koff, information condition ~1e7) the ML estimate walks far along it as readings
arrive, and straight steps leave the valley. The covariance step is the expected information at
the update (2·H⁻¹ with H = E[∂²(−2LL)]), so no extra model runs are spent on a numerical Hessian.
At a stationary point the estimate is the maximum-likelihood (or MAP) estimate a full refit finds.
"""

from __future__ import annotations

import time
from typing import Callable, Mapping, Sequence

import numpy as np

from calibration.error_models import minus2ll_terms
from calibration.errors import CalibrationError
from calibration.fit_lab import chip_problem
from calibration.individual import IndividualProblem, _bound_warnings
from calibration.lab import ChipData, _apply_row, _constants, CONSTANT_COLUMNS
from calibration.record import FitRecord
from calibration.uncertainty import from_hessian, natural_scale
from twin.catalogue import get_model

STEP = 1e-3  # forward-difference step on the log parameters
GEODESIC_H = 0.1  # probe distance, as a fraction of the step, for the second directional derivative
STRAIGHT_STEP = 0.02  # log units: shorter steps go straight (no probe run; the probe's
#   difference quotient would be solver noise)
MAX_BEND = 0.75  # reject a step whose acceleration term (½·a) exceeds 3/8 of its length (scaled)
MAX_LOG_STEP = 2.0  # at most a factor e² per step: a residual SD far too small has a
#   Fisher-scoring step of hundreds of log units (after which nothing is seen any more)
MAX_TRIALS = 12  # step attempts per iteration (two model runs each)
DECREMENT_TOL = 1e-2  # stop when the Newton decrement ½·gᵀH⁻¹g (−2LL units; ≈ 0.14 SE left) is below this
_ROW_COLUMNS = ("chip", "time_h", "event", "amount_nmol", "volume_ml", "conc_um", "observable", "value", "unit",
                *CONSTANT_COLUMNS)


class LabProblemFactory:
    """The lab rows of one chip, accumulated; ``factory(new_rows)`` adds them and returns the problem of all rows."""

    def __init__(self, rows: Sequence[Mapping] = (), *, model: str = "liver_chip", estimate: Sequence[str] = ("vmax", "km"),
                 fix: Mapping[str, float] | None = None, error: str | Mapping[str, str] | None = None) -> None:
        self.spec = get_model(model)
        self.names, self.fix, self.error = tuple(estimate), dict(fix or {}), error
        self.bounds = {n: (self.spec.parameter(n).lower, self.spec.parameter(n).upper) for n in self.names}
        self.chip: ChipData | None = None
        self.n_rows, self.last_time_h = 0, 0.0
        self.add(rows)

    def add(self, rows: Sequence[Mapping]) -> None:
        """Parse rows exactly as ``read_lab_dataset`` does (same-time ordering included), appending."""
        for row in rows:
            self.n_rows += 1
            where = f"streamed row {self.n_rows}"
            values = {c: "" if row.get(c) is None or (isinstance(row.get(c), float) and np.isnan(row[c]))
                      else str(row[c]) for c in _ROW_COLUMNS}
            record = type("Row", (), values)
            self.chip = self.chip or ChipData(values["chip"])
            if values["chip"] != self.chip.chip:
                raise CalibrationError(f"{where}: chip {values['chip']!r}, but this stream follows {self.chip.chip!r}")
            time_h = float(values["time_h"])
            if time_h < self.last_time_h:
                raise CalibrationError(f"{where}: time {time_h:g} h is before the stream's last row "
                                       f"({self.last_time_h:g} h); rows arrive in time order")
            self.last_time_h = time_h
            _constants(self.chip, record, where)
            _apply_row(self.chip, record, time_h, where)

    def __call__(self, new_rows: Sequence[Mapping] = ()) -> IndividualProblem:
        self.add(new_rows)
        if self.chip is None:
            raise CalibrationError("no rows yet; a sequential fit starts from data")
        c = self.chip  # a snapshot: later rows must not change the problems already handed out
        snapshot = ChipData(c.chip, list(c.events), dict(c.constants), list(c.times_h), list(c.observables),
                            list(c.values))
        return chip_problem(snapshot, self.spec, self.names, self.fix, self.bounds, self.error)


class SequentialFit:
    """``update(new_rows) -> FitRecord``, warm-started from the previous estimate."""

    def __init__(self, problem_factory: Callable[[Sequence[Mapping]], IndividualProblem], initial_fit: FitRecord, *,
                 max_iterations: int = 30) -> None:
        self.factory, self.record, self.max_iterations = problem_factory, initial_fit, max_iterations
        self.estimates = {n: v["estimate"] for n, v in initial_fit.theta.items()} | dict(initial_fit.sigma)
        self.n_updates = 0
        self.n_predictions = 0  # model runs spent in updates (the cost that matters)

    def update(self, new_rows: Sequence[Mapping]) -> FitRecord:
        started = time.perf_counter()
        problem = self.factory(new_rows)
        names = [*problem.names, *problem.error.parameter_names]
        default = np.log(problem.error.default_sigma(problem.dv))
        x0 = np.array([np.log(self.estimates[n]) if n in self.estimates
                       else default[k - problem.n_model] for k, n in enumerate(names)])
        x, value, hessian, iterations, converged = self._score(problem, x0)
        self.estimates = dict(zip(names, np.exp(x).tolist()))
        self.n_updates += 1
        self.record = _record(problem, x, value, hessian, converged, time.perf_counter() - started,
                              {"update": self.n_updates, "iterations": iterations, "model_runs": self.n_predictions,
                               "method": "Fisher scoring from the previous estimate",
                               "covariance": "expected information at the update"}, self.record.method)
        return self.record

    def _predict(self, problem: IndividualProblem, x: np.ndarray) -> np.ndarray:
        self.n_predictions += 1
        with np.errstate(all="ignore"):
            return problem.predict(problem.parameters(x))

    def _score(self, problem: IndividualProblem, x: np.ndarray):
        low, high = _box(problem)
        x = np.clip(x, low, high)
        f = self._predict(problem, x)
        value = _objective(problem, x, f)
        converged, iterations, hessian = False, 0, None
        for iterations in range(1, self.max_iterations + 1):
            gradient, hessian, df, weights = self._derivatives(problem, x, f)
            free = ~(((x <= low + 1e-9) & (gradient > 0)) | ((x >= high - 1e-9) & (gradient < 0)))
            g, h = gradient[free], hessian[np.ix_(free, free)]
            if 0.5 * g @ np.linalg.lstsq(h, g, rcond=None)[0] < DECREMENT_TOL:
                converged = True
                break
            # Marquardt scaling (step lengths in conditional-SE-like units), floored for a parameter
            # the data no longer see
            scale = np.sqrt(np.maximum(np.diag(h), 1e-12 * np.max(np.diag(h))))
            radius = np.inf  # the full scoring step first; halved on every failure
            for _ in range(MAX_TRIALS):
                damped = h + _levenberg(h, g, scale, radius) * np.diag(scale**2)
                v = np.zeros_like(x)
                v[free] = np.linalg.solve(damped, -g)
                v = _into_box(x, v * (MAX_LOG_STEP / max(np.max(np.abs(v)), MAX_LOG_STEP)), low, high)
                length = np.linalg.norm(v[free] * scale)
                if length == 0.0:
                    break  # the bounds leave no room to move: as stationary as this problem gets
                accel = np.zeros_like(x)
                if np.max(np.abs(v)) > STRAIGHT_STEP:
                    # Geodesic acceleration (Transtrum & Sethna 2012): the second derivative of the
                    # predictions along v bends the step along the curved valley floor of sloppy fits.
                    f_h = self._predict(problem, x + GEODESIC_H * v)
                    f_vv = 2 / GEODESIC_H * ((f_h - f) / GEODESIC_H - df @ v)
                    accel[free] = np.linalg.solve(damped, -2 * (df.T @ (weights * f_vv))[free])
                    if np.linalg.norm(accel[free] * scale) > MAX_BEND * length:
                        radius = 0.5 * length  # too curved for this step length
                        continue
                trial = np.clip(x + _into_box(x, v + 0.5 * accel, low, high), low, high)
                f_trial = self._predict(problem, trial)
                value_trial = _objective(problem, trial, f_trial)
                if value_trial <= value + 1e-9:
                    x, f, value = trial, f_trial, value_trial
                    break
                radius = 0.5 * length
            else:
                break  # no step improves: at the optimum within the objective's noise
            if length == 0.0:
                break
        return x, value, hessian, iterations, converged

    def _derivatives(self, problem: IndividualProblem, x: np.ndarray, f: np.ndarray):
        """Exact gradient of −2LL (up to the difference step) and its expected Hessian."""
        sigma = np.exp(x[problem.n_model:])
        variance = problem.error.variance(f, sigma)
        df = np.zeros((f.size, x.size))
        dv = np.zeros((f.size, x.size))
        for k in range(x.size):
            shifted = x.copy()
            shifted[k] += STEP
            if k < problem.n_model:
                f_k = self._predict(problem, shifted)
                df[:, k] = (f_k - f) / STEP
                dv[:, k] = (problem.error.variance(f_k, sigma) - variance) / STEP
            else:
                dv[:, k] = (problem.error.variance(f, np.exp(shifted[problem.n_model:])) - variance) / STEP
        r = problem.dv - f
        gradient = dv.T @ (1 / variance - r**2 / variance**2) - 2 * df.T @ (r / variance)
        hessian = 2 * df.T @ (df / variance[:, None]) + dv.T @ (dv / variance[:, None] ** 2)
        for i, name in enumerate(problem.names):
            if name in problem.prior:
                median, sd = problem.prior[name]
                gradient[i] += 2 * (x[i] - np.log(median)) / sd**2
                hessian[i, i] += 2 / sd**2
        return gradient, hessian, df, 1 / variance


def _levenberg(h: np.ndarray, g: np.ndarray, scale: np.ndarray, radius: float) -> float:
    """λ whose step −(H + λ·diag(scale²))⁻¹g has scaled length ``radius`` (0 if the scoring step is shorter)."""
    mu, q = np.linalg.eigh(h / np.outer(scale, scale))
    c = q.T @ (g / scale)

    def length(lam: float) -> float:
        return float(np.sqrt(np.sum((c / (mu + lam)) ** 2)))

    if mu[0] > 0 and length(0.0) <= radius:
        return 0.0
    low, high = max(-mu[0], 0.0), max(1.0, 2 * abs(mu[0]))
    for _ in range(60):  # bounded: radius > 0 is reached long before λ overflows
        if length(high) <= radius:
            break
        high *= 10
    for _ in range(50):  # bisection on log λ: the length falls monotonically with λ
        mid = np.sqrt(low * high) if low > 0 else high / 2
        low, high = (mid, high) if length(mid) > radius else (low, mid)
    return high


def _into_box(x: np.ndarray, step: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The step shortened to end inside the bounds (after dropping what presses on a bound already
    reached): clipping instead would leave a long step along the bound that never shrinks."""
    step = np.where(((x <= low + 1e-9) & (step < 0)) | ((x >= high - 1e-9) & (step > 0)), 0.0, step)
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(step < 0, (low - x) / step, np.where(step > 0, (high - x) / step, np.inf))
    return step * min(1.0, float(room.min()))


def _box(problem: IndividualProblem) -> tuple[np.ndarray, np.ndarray]:
    bounds = problem.log_bounds()
    return (np.array([-np.inf if b[0] is None else b[0] for b in bounds]),
            np.array([np.inf if b[1] is None else b[1] for b in bounds]))


def _objective(problem: IndividualProblem, x: np.ndarray, f: np.ndarray) -> float:
    """``problem.objective`` from predictions already made (no model run)."""
    with np.errstate(all="ignore"):
        value = float(np.sum(minus2ll_terms(problem.dv, f, problem.error.variance(f, np.exp(x[problem.n_model:])))))
    for i, name in enumerate(problem.names):
        if name in problem.prior:
            median, sd = problem.prior[name]
            value += ((x[i] - np.log(median)) / sd) ** 2
    return value if np.isfinite(value) else np.inf


def _record(problem: IndividualProblem, x, value, hessian, converged, wall_time_s, info, method) -> FitRecord:
    names = [*problem.names, *problem.error.parameter_names]
    uncertainty = from_hessian(hessian, names)
    sd = uncertainty.log_sd if uncertainty.covariance is not None else np.full(len(names), np.nan)
    warnings = [] if converged else ["the sequential update did not converge within its iteration budget; "
                                     "refit in full (chiptwin fit) before relying on it"]
    correlation = uncertainty.correlation()
    return FitRecord(
        model=problem.model, model_version=problem.model_version, method=method, converged=converged,
        minus2ll=float(value), n_observations=int(problem.dv.size), n_subjects=1, n_estimated=len(names),
        theta={n: natural_scale(x[i], sd[i]) for i, n in enumerate(problem.names)},
        sigma={n: float(np.exp(x[problem.n_model + i])) for i, n in enumerate(problem.error.parameter_names)},
        correlation={"names": names, "matrix": None if correlation is None else correlation.tolist()},
        warnings=warnings + _bound_warnings(problem, x) + uncertainty.warnings, wall_time_s=wall_time_s,
        data_selection={"fixed": problem.fixed, "sequential": info},
    )
