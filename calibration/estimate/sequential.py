"""Sequential update: as readings arrive, the fit follows the chip, warm-started from the last one.

    factory = LabProblemFactory(rows_so_far, estimate=("vmax", "km", "ocr"))
    tracker = SequentialFit(factory, fit_individual(factory(), start))
    record = tracker.update(new_rows)          # FitRecord of all the data so far

Each update is a few Fisher-scoring iterations (``calibration.estimate.scoring``: Gauss–Newton for the
full −2LL, residual SDs included, in a trust region that holds the bounds, with geodesic
acceleration for the sloppy, curved valleys of liver_chip) from the previous estimate. Chip
problems carry the model's forward sensitivities, so one batched run gives the predictions and
their Jacobian; problems without them difference the predictions (n_model + 1 runs). The
covariance step is the expected information at the update (2·H⁻¹ with H = E[∂²(−2LL)]), so no
extra model runs are spent on a numerical Hessian. At a stationary point the estimate is the
maximum-likelihood (or MAP) estimate a full refit finds.
"""

from __future__ import annotations

import time
from typing import Callable, Mapping, Sequence

import numpy as np

from calibration.errors import CalibrationError
from calibration.estimate.individual import IndividualProblem, _bound_warnings
from calibration.estimate.lab_fit import chip_problem
from calibration.estimate.scoring import Evaluator, box, fisher_scoring, into_box, levenberg, objective_from
from calibration.io.lab import COLUMNS, ChipData, _apply_row, _constants
from calibration.io.record import FitRecord
from calibration.uncertainty.information import from_hessian, natural_scale
from twin.catalogue import get_model

DECREMENT_TOL = 1e-2  # stop when the Newton decrement ½·gᵀH⁻¹g (−2LL units; ≈ 0.14 SE left) is below this


class LabProblemFactory:
    """The lab rows of one chip, accumulated; ``factory(new_rows)`` adds them and returns the problem of all rows."""

    def __init__(
        self,
        rows: Sequence[Mapping] = (),
        *,
        model: str = "liver_chip",
        estimate: Sequence[str] = ("vmax", "km"),
        fix: Mapping[str, float] | None = None,
        error: str | Mapping[str, str] | None = None,
    ) -> None:
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
            values = {
                c: "" if row.get(c) is None or (isinstance(row.get(c), float) and np.isnan(row[c])) else str(row[c])
                for c in COLUMNS
            }
            record = type("Row", (), values)
            self.chip = self.chip or ChipData(values["chip"])
            if values["chip"] != self.chip.chip:
                raise CalibrationError(f"{where}: chip {values['chip']!r}, but this stream follows {self.chip.chip!r}")
            time_h = float(values["time_h"])
            if time_h < self.last_time_h:
                raise CalibrationError(
                    f"{where}: time {time_h:g} h is before the stream's last row "
                    f"({self.last_time_h:g} h); rows arrive in time order"
                )
            self.last_time_h = time_h
            _constants(self.chip, record, where)
            _apply_row(self.chip, record, time_h, where)

    def __call__(self, new_rows: Sequence[Mapping] = ()) -> IndividualProblem:
        self.add(new_rows)
        if self.chip is None:
            raise CalibrationError("no rows yet; a sequential fit starts from data")
        c = self.chip  # a snapshot: later rows must not change the problems already handed out
        snapshot = ChipData(
            c.chip, list(c.events), dict(c.constants), list(c.times_h), list(c.observables), list(c.values)
        )
        return chip_problem(snapshot, self.spec, self.names, self.fix, self.bounds, self.error)


class SequentialFit:
    """``update(new_rows) -> FitRecord``, warm-started from the previous estimate."""

    def __init__(
        self,
        problem_factory: Callable[[Sequence[Mapping]], IndividualProblem],
        initial_fit: FitRecord,
        *,
        max_iterations: int = 30,
    ) -> None:
        self.factory, self.record, self.max_iterations = problem_factory, initial_fit, max_iterations
        self.estimates = {n: v.estimate for n, v in initial_fit.theta.items()} | dict(initial_fit.sigma)
        self.n_updates = 0
        self.n_predictions = 0  # model runs spent in updates (the cost that matters)

    def update(self, new_rows: Sequence[Mapping]) -> FitRecord:
        started = time.perf_counter()
        problem = self.factory(new_rows)
        names = [*problem.names, *problem.error.parameter_names]
        default = np.log(problem.error.default_sigma(problem.dv))
        x0 = np.array(
            [
                np.log(self.estimates[n]) if n in self.estimates else default[k - problem.n_model]
                for k, n in enumerate(names)
            ]
        )
        x, value, hessian, iterations, converged = self._score(problem, x0)
        self.estimates = dict(zip(names, np.exp(x).tolist()))
        self.n_updates += 1
        self.record = _record(
            problem,
            x,
            value,
            hessian,
            converged,
            time.perf_counter() - started,
            {
                "update": self.n_updates,
                "iterations": iterations,
                "model_runs": self.n_predictions,
                "method": "Fisher scoring from the previous estimate",
                "covariance": "expected information at the update",
            },
            self.record.method,
        )
        return self.record

    def _score(self, problem: IndividualProblem, x: np.ndarray):
        evaluator = Evaluator(problem)
        result = fisher_scoring(
            problem, x, evaluator=evaluator, max_iterations=self.max_iterations, decrement_tol=DECREMENT_TOL
        )
        self.n_predictions += evaluator.runs
        return result.x, result.value, result.hessian, result.iterations, result.converged


_levenberg, _into_box, _box, _objective = levenberg, into_box, box, objective_from  # the names tests know


def _record(problem: IndividualProblem, x, value, hessian, converged, wall_time_s, info, method) -> FitRecord:
    names = [*problem.names, *problem.error.parameter_names]
    uncertainty = from_hessian(hessian, names)
    sd = uncertainty.log_sd if uncertainty.covariance is not None else np.full(len(names), np.nan)
    warnings = (
        []
        if converged
        else [
            "the sequential update did not converge within its iteration budget; "
            "refit in full (chiptwin fit) before relying on it"
        ]
    )
    correlation = uncertainty.correlation()
    return FitRecord(
        model=problem.model,
        model_version=problem.model_version,
        method=method,
        converged=converged,
        minus2ll=float(value),
        n_observations=int(problem.dv.size),
        n_subjects=1,
        n_estimated=len(names),
        theta={n: natural_scale(x[i], sd[i]) for i, n in enumerate(problem.names)},
        sigma={n: float(np.exp(x[problem.n_model + i])) for i, n in enumerate(problem.error.parameter_names)},
        correlation={"names": names, "matrix": None if correlation is None else correlation.tolist()},
        warnings=warnings + _bound_warnings(problem, x) + uncertainty.warnings,
        wall_time_s=wall_time_s,
        data_selection={"fixed": problem.fixed, "sequential": info},
    )
