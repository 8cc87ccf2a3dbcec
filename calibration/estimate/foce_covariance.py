"""The covariance step of a FOCE-I fit: the OFV's Hessian at the estimate, and the uncertainty from it."""

from __future__ import annotations

import numpy as np

from calibration.estimate.foce import Foce
from calibration.uncertainty.information import Uncertainty, from_hessian, numerical_hessian


def gradient_hessian(objective: Foce, x: np.ndarray, step: float = 1e-4, central: bool = False) -> np.ndarray:
    """The OFV's Hessian by differences of the analytic gradient, symmetrised: forward (n + 1
    gradients; truncation O(step) ~ 1e-4 relative, far below what a standard error needs) or
    central (2·n gradients)."""
    base = None if central else objective.gradient(x)
    columns = []
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = step
        if central:
            columns.append((objective.gradient(x + e) - objective.gradient(x - e)) / (2 * step))
        else:
            columns.append((objective.gradient(x + e) - base) / step)
    hessian = np.stack(columns, axis=1)
    return 0.5 * (hessian + hessian.T)


def covariance_step(objective: Foce, x: np.ndarray, names: list[str], gradient: str) -> Uncertainty:
    """The uncertainty at the estimate ``x``: from differences of the analytic gradient ("analytic"),
    else from second differences of the OFV. Leaves the objective's modes where the Hessian's
    excursions left them (the caller puts them back at ``x``)."""
    hessian = gradient_hessian(objective, x) if gradient == "analytic" else numerical_hessian(objective.ofv, x)
    return from_hessian(hessian, names)
