"""Population fits of replicate chips (issue #11): iterative two-stage over batched per-chip fits.

Simulated chips whose vmax and km vary log-normally around known population values; the fit
must recover the population values and the between-chip variances, through the API and the CLI.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from calibration.design.insilico import Experiment, lab_rows, write_lab_dataset
from calibration.errors import CalibrationError
from calibration.estimate.lab_fit import fit_lab
from ui.cli.app import app

TRUTH = {"ps": 0.5, "vmax": 2.0, "km": 10.0, "kon": 0.05, "koff": 0.02}
OMEGA = {"vmax": 0.09, "km": 0.04}  # log-scale variances: CV 31 % and 20 %
FIXED = {"ps": 0.5, "kon": 0.05, "koff": 0.02}
N_CHIPS = 32


def population_dataset(folder, n_chips: int = N_CHIPS, seed: int = 3):
    rng = np.random.default_rng(seed)
    rows = []
    for k, dose_um in enumerate(np.resize([5.0, 20.0, 60.0, 150.0], n_chips)):
        chip = dict(TRUTH)
        for name, variance in OMEGA.items():
            chip[name] = TRUTH[name] * np.exp(np.sqrt(variance) * rng.standard_normal())
        experiment = Experiment(
            float(dose_um), (0.5, 1, 2, 4, 8, 12, 24, 48), observables=("drug_medium", "metabolite_medium")
        )
        rows += lab_rows(f"chip{k}", experiment, chip, 0.1, rng)
    return write_lab_dataset(rows, folder / f"population{n_chips}.csv")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return population_dataset(tmp_path_factory.mktemp("population"))


def test_population_values_and_variability_are_recovered(dataset):
    record = fit_lab(dataset, method="population", estimate=["vmax", "km"], fix=FIXED, error="prop")
    assert record.converged and record.method == "population-its" and record.n_subjects == N_CHIPS
    for name in ("vmax", "km"):
        # population medians within 10 % (SE of the mean of 32 log-normal chips: ~5 % and ~4 %)
        assert abs(record.theta[name].estimate / TRUTH[name] - 1) < 0.10, (name, record.theta[name])
        low, high = record.theta[name].ci95
        assert low < TRUTH[name] < high, (name, record.theta[name])
        # variances within a factor 2 (relative SE of a variance from 32 chips: ~25 %)
        assert 0.5 < record.omega[name]["variance"] / OMEGA[name] < 2.0, (name, record.omega[name])
    for key in ("drug_medium.prop_cv", "metabolite_medium.prop_cv"):
        assert 0.08 < record.sigma[key] < 0.12, (key, record.sigma[key])
    # each chip's own estimate sits between the population value and its data: shrunk, not equal
    vmax = np.array([chip["vmax"] for chip in record.individual.values()])
    assert len(vmax) == N_CHIPS and np.std(np.log(vmax)) > 0.15


def test_the_cli_fits_a_population_of_chips(dataset, tmp_path):
    small = population_dataset(tmp_path, n_chips=8, seed=5)
    result = CliRunner().invoke(
        app,
        [
            "fit",
            str(small),
            "-m",
            "liver_chip",
            "--population",
            "--estimate",
            "vmax,km",
            "--fix",
            "ps=0.5",
            "--fix",
            "kon=0.05",
            "--fix",
            "koff=0.02",
            "--json",
        ],
    )
    assert result.exit_code == 0, (result.output, result.exception)
    record = json.loads(result.stdout)
    assert record["method"] == "population-its" and record["n_subjects"] == 8
    assert set(record["omega"]) == {"vmax", "km"}
    assert 1.5 < record["theta"]["vmax"]["estimate"] < 2.7


def test_random_effects_on_a_subset_are_refused_with_the_fix(dataset):
    with pytest.raises(CalibrationError, match="--fix"):
        fit_lab(dataset, method="population", estimate=["vmax", "km"], random=["vmax"], fix=FIXED)


def test_too_few_chips_for_a_population_is_one_clear_line(tmp_path):
    path = population_dataset(tmp_path, n_chips=2)
    result = CliRunner().invoke(app, ["fit", str(path), "-m", "liver_chip", "--population", "--estimate", "vmax"])
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "at least 3 chips" in lines[0] and "pooled" in lines[0], result.stderr
