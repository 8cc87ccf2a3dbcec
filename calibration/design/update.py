"""A fast posterior update for the design loop: MAP by Gauss–Newton, Laplace covariance.

For in-silico loops (the closed-loop benchmark) where a full ``fit_individual`` after every
experiment is too slow: the residual CV of each observable is taken as known, proportional
error is handled on the log scale (r = (log y − log f)/cv, exact to first order in cv), the
prior is log-normal, and all chips are simulated in one batched call per iteration (the
Jacobian by central differences in one more). The covariance is (JᵀJ)⁻¹ of the stacked
data-and-prior residuals at the optimum: the observed Gauss–Newton information plus the
prior precision. A real experiment should still be fitted with ``fit_individual``/``fit_lab``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy.optimize import least_squares

from calibration.design.insilico import Experiment
from calibration.design.posterior import Posterior
from calibration.design.sensitivity import LOG_STEP, TOLERANCES, twin_constants
from calibration.errors import FitFailedError
from twin.catalogue import get_model
from twin.chip import ChipRun, Dose, Sample, simulate_chips

BEFORE_SAMPLE_H = 1e-9  # a sample is measured just before its volume is removed


@dataclass(frozen=True)
class Observed:
    """One experiment (one chip) and its measured values: observable → one value per sample time."""

    experiment: Experiment
    values: Mapping[str, Sequence[float]]


def observed_from_rows(experiment: Experiment, rows: Sequence[dict]) -> Observed:
    """The observations of ``calibration.design.insilico.lab_rows`` output, in sample order."""
    values = {
        o: [r["value"] for r in rows if r["event"] == "observation" and r["observable"] == o]
        for o in experiment.observables
    }
    return Observed(experiment, values)


def _events(experiment: Experiment) -> tuple:
    return (
        Dose(0.0, experiment.dose_nmol(), 0.0),
        *(Sample(t, experiment.sample_volume_ml) for t in experiment.sample_times_h),
    )


class _Loop:
    def __init__(
        self,
        model: str,
        names: tuple[str, ...],
        fixed: Mapping[str, float],
        data: Sequence[Observed],
        cv: Mapping[str, float],
    ) -> None:
        self.model, self.names, self.fixed, self.data = model, names, dict(fixed), list(data)
        self.observables = tuple(sorted({o for d in data for o in d.experiment.observables}))
        self.times = np.unique([t - BEFORE_SAMPLE_H for d in data for t in d.experiment.sample_times_h])
        self.index, y, scale = [], [], []
        for d in self.data:
            cols = np.searchsorted(self.times, np.asarray(d.experiment.sample_times_h) - BEFORE_SAMPLE_H)
            for o in d.experiment.observables:
                self.index.append((self.observables.index(o), cols))
                y.append(np.log(np.clip(np.asarray(d.values[o], dtype=float), 1e-12, None)))
                scale.append(np.full(cols.size, cv[o]))
        self.log_y, self.cv = np.concatenate(y), np.concatenate(scale)

    def predict(self, xs: np.ndarray) -> np.ndarray:
        """log predictions at every observation for each parameter vector in ``xs`` (N, P) → (N, n_obs)."""
        runs = [
            ChipRun(
                {**self.fixed, **dict(zip(self.names, np.exp(x)))},
                _events(d.experiment),
                twin_constants(d.experiment.constants),
            )
            for x in xs
            for d in self.data
        ]
        out = simulate_chips(runs, self.times, list(self.observables), model=self.model, **TOLERANCES)
        stacked = np.stack([out[o] for o in self.observables], axis=1)  # (N·E, O, T)
        stacked = stacked.reshape(len(xs), len(self.data), len(self.observables), self.times.size)
        per_chip = [
            np.concatenate([stacked[:, e, o, cols] for o, cols in self._rows(e)], axis=1) for e in range(len(self.data))
        ]
        return np.log(np.clip(np.concatenate(per_chip, axis=1), 1e-300, None))

    def _rows(self, e: int):
        start = sum(len(d.experiment.observables) for d in self.data[:e])
        return self.index[start : start + len(self.data[e].experiment.observables)]


def laplace_update(
    model: str,
    names: Sequence[str],
    prior: Mapping[str, tuple[float, float]],
    data: Sequence[Observed],
    cv: Mapping[str, float],
    *,
    fixed: Mapping[str, float] | None = None,
    start: Mapping[str, float] | None = None,
) -> Posterior:
    """MAP and Laplace posterior of ``names`` given log-normal ``prior`` {name: (median, log SD)}."""
    names = tuple(names)
    loop = _Loop(model, names, fixed or {}, data, cv)
    mu = np.log([prior[n][0] for n in names])
    sd = np.array([prior[n][1] for n in names])
    spec = get_model(model)
    low = np.log([spec.parameter(n).lower for n in names])
    high = np.log([spec.parameter(n).upper for n in names])
    x0 = np.clip(np.log([(start or {}).get(n, prior[n][0]) for n in names]), low + 1e-6, high - 1e-6)

    def residuals(x: np.ndarray) -> np.ndarray:
        return np.concatenate([(loop.log_y - loop.predict(x[None])[0]) / loop.cv, (x - mu) / sd])

    def jacobian(x: np.ndarray) -> np.ndarray:
        shifts = np.concatenate([np.eye(x.size), -np.eye(x.size)]) * LOG_STEP
        f = loop.predict(x + shifts)
        data_part = -(f[: x.size] - f[x.size :]).T / (2 * LOG_STEP) / loop.cv[:, None]
        return np.vstack([data_part, np.diag(1 / sd)])

    result = least_squares(
        residuals, x0, jac=jacobian, bounds=(low, high), method="trf", x_scale=1.0, xtol=1e-8, ftol=1e-8, max_nfev=100
    )
    if not np.all(np.isfinite(result.x)):
        raise FitFailedError("the design-loop update did not converge; check the data")
    jac = jacobian(result.x)
    covariance = np.linalg.inv(jac.T @ jac)
    sigma = {f"{o}.prop_cv": float(cv[o]) for o in loop.observables}
    return Posterior(model, names, result.x, covariance, dict(fixed or {}), sigma)
