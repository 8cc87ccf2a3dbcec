"""Plots of a fit, saved as PNG (matplotlib's Agg canvas; no pyplot, no display, no global state).

- ``plot_profile``: Δ(−2LL) against the parameter (log axis), the 3.84 line, the interval.
- ``plot_fit_band``: data and prediction per observable, with the 90 % band of the prediction
  from the parameter covariance (delta method on the log parameters).
- Population fits: ``plot_vpc`` (visual predictive check), ``plot_etas`` (η against N(0, ω²), with
  shrinkage) and ``plot_observed_vs_predicted`` (PRED and IPRED).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from calibration.estimate.individual import IndividualProblem
from calibration.io.record import FitRecord
from calibration.uncertainty.profile import CHI2_95, Profile, optimum
from calibration.uncertainty.vpc import Etas, Predictions, Vpc

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


def plot_vpc(check: Vpc, path: str | Path, unit: str = "", time_unit: str = "h") -> Path:
    """Observations, their 5/50/95th percentiles per bin, and the simulated 90 % intervals of each."""
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    ax = figure.add_subplot()
    ax.plot(check.times_h, check.values, ".", color="0.6", ms=3, label="observations")
    for k, (color, label) in enumerate((("C0", "5th"), ("C3", "50th"), ("C0", "95th"))):
        ax.fill_between(
            check.bin_time_h,
            check.simulated[:, k, 0],
            check.simulated[:, k, 2],
            color=color,
            alpha=0.18,
            label=f"simulated {label} percentile, 90 % interval",
        )
        ax.plot(
            check.bin_time_h,
            check.observed[:, k],
            "-o",
            color=color,
            ms=3,
            lw=1.5,
            label=f"observed {label} percentile",
        )
    ax.set_yscale("log" if np.all(check.values > 0) else "linear")
    ax.set_xlabel(f"time ({time_unit})")
    ax.set_ylabel(f"observation ({unit})" if unit else "observation (DV, in the dataset's unit)")
    ax.set_title(f"Visual predictive check ({check.n_replicates} simulated replicates of the design)")
    ax.legend(fontsize=7, loc="best")
    return _save(figure, path)


def plot_etas(etas: Etas, path: str | Path) -> Path:
    """Each random effect's individual η beside its N(0, ω²), with the shrinkage."""
    names = list(etas.values)
    figure = Figure(figsize=(3.4 * len(names), 3.2), layout="constrained")
    for k, name in enumerate(names):
        ax = figure.add_subplot(1, len(names), k + 1)
        values, sd = etas.values[name], etas.omega_sd[name]
        ax.hist(values, bins=min(20, max(5, values.size // 4)), density=True, color="C0", alpha=0.5)
        grid = np.linspace(-3.5 * sd, 3.5 * sd, 200)
        ax.plot(grid, np.exp(-0.5 * (grid / sd) ** 2) / (sd * np.sqrt(2 * np.pi)), color="C3", label="N(0, ω²)")
        ax.axvline(0.0, color="0.4", lw=0.8)
        ax.set_xlabel(f"η {name} (log scale, dimensionless)")
        ax.set_title(f"ω {sd:.3g}, shrinkage {100 * etas.shrinkage(name):.0f} %", fontsize=9)
        ax.legend(fontsize=7)
    return _save(figure, path)


def plot_observed_vs_predicted(found: Predictions, path: str | Path, unit: str = "") -> Path:
    """Observations against population (PRED) and individual (IPRED) predictions, with the identity line."""
    figure = Figure(figsize=(8, 4), layout="constrained")
    low = max(min(found.observed.min(), found.pred.min(), found.ipred.min()), 1e-12)
    high = max(found.observed.max(), found.pred.max(), found.ipred.max())
    suffix = f" ({unit})" if unit else ""
    for k, (predicted, label) in enumerate(((found.pred, "PRED (η = 0)"), (found.ipred, "IPRED (η̂)"))):
        ax = figure.add_subplot(1, 2, k + 1)
        ax.plot(predicted, found.observed, ".", color="C0", ms=3)
        ax.plot([low, high], [low, high], color="C3", lw=1)
        if low > 0:
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_xlabel(f"{label}{suffix}")
        ax.set_ylabel(f"observed{suffix}")
    return _save(figure, path)
