"""Population-fit diagnostics: the VPC tells a right variability model from a wrong one; η and their
shrinkage; PRED and IPRED; and `chiptwin fit --population --plot` writes the three figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from calibration.estimate.error_models import ErrorModel
from calibration.estimate.nonmem_fit import fit_nonmem
from calibration.io.datasets import load_nonmem
from calibration.io.nonmem import NonmemProblem
from calibration.io.record import Estimate, FitRecord
from calibration.uncertainty.vpc import individual_etas, predictions, vpc
from ui.cli.app import app

REPO = Path(__file__).resolve().parents[2]
BOLUS = REPO.parent / "shared" / "reference" / "pk" / "Bolus_1CPT.csv"
PHENO = REPO / "examples" / "pk" / "pheno_sd.csv"
# NONMEM's estimates for the ACOP single-dose bolus data (shared/reference/README.md), the data simulated
# from exactly this model: a VPC of them is what a right model looks like
NONMEM = {"cl": np.exp(1.3662), "v": np.exp(4.2075)}
NONMEM_OMEGA = {"cl": 0.072567, "v": 0.091407}


@pytest.fixture(scope="module")
def bolus(tmp_path_factory) -> NonmemProblem:
    if not BOLUS.exists():
        pytest.skip(f"!!! reference data {BOLUS} missing: VPC check SKIPPED !!!")
    frame = pd.read_csv(BOLUS)
    frame = frame[frame["SD"] == 1].copy()
    frame.loc[frame["SS"] == 99, "SS"] = 0
    path = tmp_path_factory.mktemp("vpc") / "bolus.csv"
    frame.to_csv(path, index=False)
    data, _ = load_nonmem(path)
    return NonmemProblem(data, "iv_1cpt", ("cl", "v"))


def _record(omega_scale: float) -> FitRecord:
    theta = {name: Estimate(float(value)) for name, value in NONMEM.items()}
    omega = {name: {"variance": variance * omega_scale} for name, variance in NONMEM_OMEGA.items()}
    return FitRecord("iv_1cpt", "1", "population-foce-i", True, 0.0, 1, 1, 5, theta, {"prop_cv": 0.19752}, omega=omega)


def test_the_vpc_of_the_true_model_holds_the_data_and_a_too_narrow_one_does_not(bolus):
    right = vpc(bolus, _record(1.0), ErrorModel("prop"), n_replicates=300, seed=1)
    narrow = vpc(bolus, _record(0.05), ErrorModel("prop"), n_replicates=300, seed=1)
    n_bins = len(right.bin_time_h)
    assert n_bins >= 6 and right.observed.shape == (n_bins, 3) and right.simulated.shape == (n_bins, 3, 3)
    assert right.outside().sum(axis=0).max() <= 2  # 90 % intervals: about 1 bin in 10 outside by chance
    misses = narrow.outside().sum(axis=0)
    assert misses[0] >= n_bins - 1 and misses[2] >= n_bins // 2  # the spread it lacks shows in the tails
    assert np.all(right.simulated[:, :, 0] <= right.simulated[:, :, 2])


@pytest.fixture(scope="module")
def pheno_fit():
    problems: dict = {}
    record = fit_nonmem(
        PHENO, "iv_1cpt", "population", random=["cl", "v"], init={"cl": 0.01, "v": 1.0}, problems=problems
    )
    assert record.converged
    return problems["population"]


def test_etas_are_centred_with_a_shrinkage_and_ipred_beats_pred(pheno_fit):
    problem, record = pheno_fit
    etas = individual_etas(record)
    assert set(etas.values) == {"cl", "v"} and all(v.size == len(problem.ids) for v in etas.values.values())
    for name in ("cl", "v"):
        assert abs(np.mean(etas.values[name])) < 0.5 * etas.omega_sd[name]
        assert 0.0 <= etas.shrinkage(name) < 1.0
    found = predictions(problem, record)
    assert found.observed.size == int(problem.mask.sum())
    assert np.sum(np.log(found.ipred / found.observed) ** 2) < 0.5 * np.sum(np.log(found.pred / found.observed) ** 2)


def test_fit_plot_of_a_population_fit_writes_vpc_eta_and_observed_vs_predicted(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "fit",
            str(PHENO),
            "-m",
            "iv_1cpt",
            "--population",
            "--random",
            "cl,v",
            "--init",
            "cl=0.01",
            "--init",
            "v=1",
            "--plot",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    for name in ("vpc.png", "eta.png", "observed_vs_predicted.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_plot_of_a_population_fit_of_lab_data_is_refused_in_one_line(tmp_path):
    lab = REPO / "examples" / "lab" / "closed_loop_liver.csv"
    result = CliRunner().invoke(app, ["fit", str(lab), "-m", "liver_chip", "--population", "--plot", str(tmp_path)])
    assert result.exit_code == 2 and "needs NONMEM-style data" in result.output
    assert not list(tmp_path.iterdir())
