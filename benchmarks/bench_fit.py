"""Chip calibration benchmarks (issue #11): pooled fits on exact sensitivities and a profile.

    .venv/bin/python -m benchmarks.bench_fit [--repeats 3] [--skip-old]     # → results/fit_engines.json

Wall and CPU time (time.process_time), medians of ``--repeats``: a pooled liver_chip fit of 4
chips (vmax, km, kon, koff; ps fixed; 8 samples × drug and metabolite per chip; proportional
errors) by the new engine (Fisher scoring on batched forward sensitivities) beside the old one
(L-BFGS-B on central differences of single-chip odeint solves; ``fit_lab(engine="differences")``);
a pooled fit of 96 chips; a 96-chip population fit; and a profile of km at 20 points
(warm-started Fisher scoring). Targets: ≤ 2 s CPU and ≥ 20× for the 4-chip fit, ≤ 60 s for 96
chips, ≤ 10 s for the profile. The PK/FOCE-I fits are in ``benchmarks.bench_fit_pk``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.common import timed, write_results

CHIP_TRUTH = {"ps": 0.5, "vmax": 2.0, "km": 10.0, "kon": 0.05, "koff": 0.02}
CHIP_ESTIMATE = ["vmax", "km", "kon", "koff"]
CHIP_TARGETS = {
    "pooled_4_cpu_s": 2.0,
    "pooled_4_speedup": 20.0,
    "pooled_96_s": 60.0,
    "profile_20_s": 10.0,
    "population_96_s": 60.0,
}


def chip_dataset(n_chips: int, folder: Path, seed: int = 1) -> Path:
    """``n_chips`` liver chips at doses 5–150 µM, 8 samples each, drug and metabolite, 10 % noise."""
    from calibration.design.insilico import Experiment, lab_rows, write_lab_dataset

    rng = np.random.default_rng(seed)
    rows = []
    for k, dose in enumerate(np.resize([5.0, 20.0, 60.0, 150.0], n_chips)):
        experiment = Experiment(
            float(dose), (0.5, 1, 2, 4, 8, 12, 24, 48), observables=("drug_medium", "metabolite_medium")
        )
        rows += lab_rows(f"chip{k}", experiment, CHIP_TRUTH, 0.1, rng)
    return write_lab_dataset(rows, folder / f"lab{n_chips}.csv")


POPULATION_OMEGA = {"vmax": 0.09, "km": 0.04}  # log-scale variances of the simulated chips


def population_dataset(n_chips: int, folder: Path, seed: int = 3) -> Path:
    """``n_chips`` chips whose vmax and km vary log-normally (``POPULATION_OMEGA``) around ``CHIP_TRUTH``."""
    from calibration.design.insilico import Experiment, lab_rows, write_lab_dataset

    rng = np.random.default_rng(seed)
    rows = []
    for k, dose in enumerate(np.resize([5.0, 20.0, 60.0, 150.0], n_chips)):
        truth = dict(CHIP_TRUTH)
        for name, variance in POPULATION_OMEGA.items():
            truth[name] *= float(np.exp(np.sqrt(variance) * rng.standard_normal()))
        experiment = Experiment(
            float(dose), (0.5, 1, 2, 4, 8, 12, 24, 48), observables=("drug_medium", "metabolite_medium")
        )
        rows += lab_rows(f"chip{k}", experiment, truth, 0.1, rng)
    return write_lab_dataset(rows, folder / f"population{n_chips}.csv")


def population_fit(path: Path) -> dict:
    from calibration.estimate.lab_fit import fit_lab

    record = fit_lab(path, method="population", estimate=["vmax", "km"], fix={"ps": 0.5, "kon": 0.05, "koff": 0.02})
    return {**_summary(record), "omega": {n: v["variance"] for n, v in record.omega.items()}, "sigma": record.sigma}


def chip_fit(path: Path, engine: str):
    from calibration.estimate.lab_fit import fit_lab

    return fit_lab(path, method="pooled", estimate=CHIP_ESTIMATE, fix={"ps": 0.5}, error="prop", engine=engine)


def _summary(record) -> dict:
    return {
        "minus2ll": record.minus2ll,
        "converged": record.converged,
        "theta": {n: v.estimate for n, v in record.theta.items()},
        "rse_percent": {n: v.rse_percent for n, v in record.theta.items()},
    }


def profile_20(path: Path) -> dict:
    """km's profile at 20 points spanning ±0.7 in log (the fit itself not timed)."""
    from calibration.estimate.lab_fit import fit_lab
    from calibration.uncertainty.profile import optimum, profile_grid

    problems: dict = {}
    record = fit_lab(path, method="pooled", estimate=CHIP_ESTIMATE, fix={"ps": 0.5}, error="prop", problems=problems)
    problem, _ = problems["pooled"]
    x_hat = optimum(problem, record)
    grid = record.theta["km"].estimate * np.exp(np.linspace(-0.7, 0.7, 20))
    figures = timed(lambda: profile_grid(problem, x_hat, "km", grid), 1)
    prof = figures.pop("result")
    figures["delta_minus2ll"] = prof.delta.tolist()
    figures["values"] = prof.values.tolist()
    return figures


def chip_benchmarks(repeats: int, skip_old: bool) -> dict:
    console = Console()
    figures: dict = {"targets": CHIP_TARGETS}
    with tempfile.TemporaryDirectory() as folder:
        four, many = chip_dataset(4, Path(folder)), chip_dataset(96, Path(folder))
        console.print("pooled 4-chip fit, new engine …")
        new = timed(lambda: chip_fit(four, "sensitivities"), repeats)
        new["result"] = _summary(new["result"])
        figures["pooled_4"] = {"new": new}
        if not skip_old:
            console.print("pooled 4-chip fit, old engine (one run) …")
            old = timed(lambda: chip_fit(four, "differences"), 1)
            old["result"] = _summary(old["result"])
            figures["pooled_4"]["old"] = old
            figures["pooled_4"]["speedup_cpu"] = old["cpu_s"] / new["cpu_s"]
            figures["pooled_4"]["speedup_wall"] = old["wall_s"] / new["wall_s"]
            figures["pooled_4"]["minus2ll_new_minus_old"] = new["result"]["minus2ll"] - old["result"]["minus2ll"]
        console.print("pooled 96-chip fit, new engine …")
        big = timed(lambda: chip_fit(many, "sensitivities"), 1)
        big["result"] = _summary(big["result"])
        figures["pooled_96"] = big
        console.print("population fit (ITS) of 96 chips …")
        figures["population_96"] = timed(lambda: population_fit(population_dataset(96, Path(folder))), 1)
        figures["population_96"]["truth"] = {"theta": CHIP_TRUTH, "omega": POPULATION_OMEGA}
        console.print("profile of km at 20 points …")
        figures["profile_20"] = profile_20(four)
    table = Table(
        title="liver_chip fits (s): new = Fisher scoring on batched sensitivities; old = L-BFGS-B on differences"
    )
    for column in ("task", "target", "new wall", "new CPU", "old wall", "old CPU", "ratio (CPU)"):
        table.add_column(column)
    p4 = figures["pooled_4"]
    old = p4.get("old", {})
    table.add_row(
        "pooled, 4 chips",
        "≤ 2 CPU, ≥ 20×",
        f"{p4['new']['wall_s']:.2f}",
        f"{p4['new']['cpu_s']:.2f}",
        f"{old.get('wall_s', float('nan')):.1f}",
        f"{old.get('cpu_s', float('nan')):.1f}",
        f"{p4.get('speedup_cpu', float('nan')):.1f}×",
    )
    table.add_row(
        "pooled, 96 chips",
        "≤ 60",
        f"{figures['pooled_96']['wall_s']:.1f}",
        f"{figures['pooled_96']['cpu_s']:.1f}",
        "",
        "",
        "",
    )
    table.add_row(
        "population (ITS), 96 chips",
        "≤ 60",
        f"{figures['population_96']['wall_s']:.1f}",
        f"{figures['population_96']['cpu_s']:.1f}",
        "",
        "",
        "",
    )
    table.add_row(
        "profile km, 20 points",
        "≤ 10",
        f"{figures['profile_20']['wall_s']:.1f}",
        f"{figures['profile_20']['cpu_s']:.1f}",
        "",
        "",
        "",
    )
    console.print(table)
    console.print(f"written to {write_results('fit_engines', figures)}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the 4-chip fit (median)")
    parser.add_argument("--skip-old", action="store_true", help="leave out the old engine's fit")
    args = parser.parse_args()
    chip_benchmarks(args.repeats, args.skip_old)


if __name__ == "__main__":
    main()
