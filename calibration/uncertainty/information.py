"""Uncertainty from the observed information, on the log scale where parameters live.

For an objective O = −2 log L, the covariance of the estimates is 2·H⁻¹ with H the
Hessian of O at the optimum. Parameters are estimated as log values, so intervals are
exp(x̂ ± 1.96·SE(x̂)) — never negative — and the natural-scale SE is the delta-method
θ̂·SE(log θ̂).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from calibration.io.record import Estimate

Z95 = 1.959963984540054
POORLY_IDENTIFIED_RSE = 0.5  # relative SE above 50 % (log-scale SD above 0.5): flag it


def numerical_hessian(fun: Callable[[np.ndarray], float], x: np.ndarray, step: float = 1e-3) -> np.ndarray:
    """Central-difference Hessian (step on the log scale: 0.1 % of each parameter)."""
    n = x.size
    hessian = np.empty((n, n))
    f0 = fun(x)
    for i in range(n):
        ei = np.zeros(n)
        ei[i] = step
        hessian[i, i] = (fun(x + ei) - 2 * f0 + fun(x - ei)) / step**2
        for j in range(i):
            ej = np.zeros(n)
            ej[j] = step
            value = (fun(x + ei + ej) - fun(x + ei - ej) - fun(x - ei + ej) + fun(x - ei - ej)) / (4 * step**2)
            hessian[i, j] = hessian[j, i] = value
    return hessian


@dataclass
class Uncertainty:
    covariance: np.ndarray | None  # of the log-scale estimates; None when H is not invertible
    warnings: list[str]

    @property
    def log_sd(self) -> np.ndarray:
        if self.covariance is None:
            return np.full(0, np.nan)
        return np.sqrt(np.clip(np.diag(self.covariance), 0, None))

    def correlation(self) -> np.ndarray | None:
        if self.covariance is None:
            return None
        sd = self.log_sd
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.covariance / np.outer(sd, sd)


def from_hessian(hessian: np.ndarray, names: list[str]) -> Uncertainty:
    """Covariance 2·H⁻¹, with a warning naming each parameter the data do not pin down."""
    warnings: list[str] = []
    if not np.all(np.isfinite(hessian)):
        return Uncertainty(None, ["the Hessian could not be evaluated at the optimum; no standard errors"])
    eigenvalues, vectors = np.linalg.eigh((hessian + hessian.T) / 2)
    if eigenvalues.min() <= 1e-10 * max(abs(eigenvalues.max()), 1.0):
        weakest = vectors[:, int(np.argmin(eigenvalues))]
        involved = [names[i] for i in np.argsort(-np.abs(weakest)) if abs(weakest[i]) > 0.3]
        warnings.append(
            "not identified: the data do not separate "
            + " and ".join(involved)
            + "; fix some of them or add data that moves them differently (see the profile likelihood)"
        )
        return Uncertainty(None, warnings)
    covariance = 2 * np.linalg.inv(hessian)
    sd = np.sqrt(np.clip(np.diag(covariance), 0, None))
    for name, value in zip(names, sd):
        if value > POORLY_IDENTIFIED_RSE:
            warnings.append(f"poorly identified: {name} has a relative SE of {100 * value:.0f} %")
    return Uncertainty(covariance, warnings)


def natural_scale(log_estimate: float, log_sd: float) -> Estimate:
    estimate = float(np.exp(log_estimate))
    if not np.isfinite(log_sd):
        return Estimate(estimate)
    return Estimate(
        estimate,
        se=estimate * float(log_sd),
        ci95=[float(np.exp(log_estimate - Z95 * log_sd)), float(np.exp(log_estimate + Z95 * log_sd))],
        rse_percent=100 * float(log_sd),
    )
