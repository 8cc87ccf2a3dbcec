"""Plots of a fit, saved as PNG (matplotlib's Agg canvas; no pyplot, no display, no global state).

- ``plot_profile``: Δ(−2LL) against the parameter (log axis), the 3.84 line, the interval.
- ``plot_fit_band``: data and prediction per observable, with the 90 % band of the prediction
  from the parameter covariance (delta method on the log parameters).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from calibration.estimate.individual import IndividualProblem
from calibration.io.record import FitRecord
from calibration.uncertainty.profile import CHI2_95, Profile, optimum

Z90 = 1.6448536269514722


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=110)
    return path


def plot_profile(profile: Profile, path: str | Path) -> Path:
    figure = Figure(figsize=(5.5, 4), layout="constrained")
    ax = figure.add_subplot()
    ax.plot(profile.values, profile.delta, "o-", color="C0", ms=4)
    ax.axhline(CHI2_95, color="C3", ls="--", lw=1, label="Δ = 3.84 (95 %)")
    ax.axvline(profile.estimate, color="0.4", lw=1, label=f"estimate {profile.estimate:.4g}")
    low = profile.lower if profile.lower is not None else profile.values.min()
    high = profile.upper if profile.upper is not None else profile.values.max()
    ax.axvspan(low, high, color="C0", alpha=0.12, label=_interval_label(profile))
    ax.set_xscale("log")
    ax.set_xlabel(profile.name)
    ax.set_ylabel("Δ(−2 log L)")
    ax.set_title(f"profile likelihood of {profile.name}")
    ax.legend(fontsize=8)
    return _save(figure, path)


def _interval_label(profile: Profile) -> str:
    low = "open" if profile.lower is None else f"{profile.lower:.4g}"
    high = "open" if profile.upper is None else f"{profile.upper:.4g}"
    return f"95 % interval [{low}, {high}]"


def record_covariance(problem: IndividualProblem, record: FitRecord) -> np.ndarray | None:
    """Covariance of the log model parameters from the record's RSEs and correlation matrix."""
    corr = record.correlation.get("matrix")
    sd = [record.theta[n].rse_percent for n in problem.names]
    if corr is None or any(s is None for s in sd):
        return None
    names = record.correlation["names"]
    index = [names.index(n) for n in problem.names]
    corr = np.asarray(corr, dtype=float)[np.ix_(index, index)]
    sd = np.asarray(sd, dtype=float) / 100
    return corr * np.outer(sd, sd)


def prediction_band(
    problem: IndividualProblem, x_hat: np.ndarray, covariance: np.ndarray | None, step: float = 1e-4
) -> tuple[np.ndarray, np.ndarray]:
    """Prediction and its SD from the parameter covariance (forward differences, delta method)."""
    f = problem.predict(problem.parameters(x_hat))
    if covariance is None:
        return f, np.full(f.size, np.nan)
    jac = np.empty((f.size, problem.n_model))
    for k in range(problem.n_model):
        x = x_hat.copy()
        x[k] += step
        jac[:, k] = (problem.predict(problem.parameters(x)) - f) / step
    return f, np.sqrt(np.clip(np.einsum("ij,jk,ik->i", jac, covariance, jac), 0, None))


def plot_fit_band(
    problem: IndividualProblem,
    record: FitRecord,
    path: str | Path,
    x: np.ndarray | None = None,
    x_label: str | None = None,
) -> Path:
    """One panel per observable (error group): data, prediction, 90 % band. ``x`` defaults to the
    observation times when the predictor knows them (a chip), else to the observation index."""
    x_hat = optimum(problem, record)
    f, sd = prediction_band(problem, x_hat, record_covariance(problem, record))
    chip = getattr(problem.predict, "chip", None)
    if x is None and chip is not None:
        x, x_label = np.asarray(chip.times_h, dtype=float), x_label or "time (h)"
    if x is None:
        x, x_label = np.arange(f.size, dtype=float), x_label or "observation"
    groups = [g for g in dict.fromkeys(problem.error.groups.tolist())]
    figure = Figure(figsize=(6.5, 3.2 * len(groups)), layout="constrained")
    for k, group in enumerate(groups):
        ax = figure.add_subplot(len(groups), 1, k + 1)
        rows = np.flatnonzero(problem.error.groups == group)
        rows = rows[np.argsort(x[rows], kind="stable")]
        ax.fill_between(
            x[rows],
            f[rows] - Z90 * sd[rows],
            f[rows] + Z90 * sd[rows],
            color="C0",
            alpha=0.25,
            label="90 % band (parameter uncertainty)",
        )
        ax.plot(x[rows], f[rows], "-", color="C0", label="prediction")
        ax.plot(x[rows], problem.dv[rows], "o", color="C1", ms=3, label="data")
        ax.set_ylabel(group or "value")
        ax.set_xlabel(x_label)
        ax.legend(fontsize=8)
    figure.suptitle(f"{record.model} — {record.method} fit")
    return _save(figure, path)
