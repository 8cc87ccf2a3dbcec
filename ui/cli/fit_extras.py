"""The extras of `chiptwin fit` (--profile, --mcmc, --plot): shown on the console and saved as PNG."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    import numpy as np

    from calibration.io.record import FitRecord


def save_plots(problems: dict, directory: Path) -> list[Path]:
    """fit_<key>.png (data, prediction, 90 % band) and profile_<key>_<name>.png for each fitted problem."""
    from calibration.io.plots import plot_fit_band, plot_profile
    from calibration.uncertainty.profile import Profile

    paths = []
    for key, (problem, record) in problems.items():
        paths.append(plot_fit_band(problem, record, directory / f"fit_{key}.png"))
        for name, kept in record.profiles.items():
            profile = Profile(
                name, kept.estimate, _array(kept.values), _array(kept.delta_minus2ll), kept.ci95[0], kept.ci95[1]
            )
            paths.append(plot_profile(profile, directory / f"profile_{key}_{name}.png"))
    return paths


def _array(values: list[float]) -> np.ndarray:
    import numpy as np

    return np.asarray(values, dtype=float)


def print_uncertainty(record: FitRecord, console: Console) -> None:
    records = {"": record} | dict(record.chips)
    for key, rec in records.items():
        prefix = f"chip {key}: " if key else ""
        for name, profile in rec.profiles.items():
            low, high = (("open" if v is None else f"{v:.4g}") for v in profile.ci95)
            console.print(f"{prefix}profile-likelihood 95 % interval of {name}: {low} – {high}")
        mcmc = rec.mcmc
        if mcmc is not None:
            console.print(
                f"{prefix}MCMC: {mcmc.n_walkers} walkers × {mcmc.n_steps} steps, acceptance "
                f"{mcmc.acceptance_fraction:.2f}"
            )
            for name, s in mcmc.summary.items():
                console.print(f"  {name}: median {s.median:.4g}, 95 % {s.ci95[0]:.4g} – {s.ci95[1]:.4g}")


def save_population_plots(problems: dict, directory: Path, error: str) -> list[Path]:
    """vpc.png, eta.png and observed_vs_predicted.png of a population fit of NONMEM-style data."""
    from calibration.estimate.error_models import ErrorModel
    from calibration.io.plots import plot_etas, plot_observed_vs_predicted, plot_vpc
    from calibration.uncertainty.vpc import individual_etas, predictions, vpc

    problem, record = problems["population"]
    check = vpc(problem, record, ErrorModel(error))
    return [
        plot_vpc(check, directory / "vpc.png"),
        plot_etas(individual_etas(record), directory / "eta.png"),
        plot_observed_vs_predicted(predictions(problem, record), directory / "observed_vs_predicted.png"),
    ]
