"""Profiles started on the tangent with a looser stop give the same Δ(−2LL) as full restricted fits."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.design.insilico import Experiment, lab_rows, write_lab_dataset
from calibration.estimate.lab_fit import fit_lab
from calibration.uncertainty import profile as profiles

TRUTH = {"ps": 0.5, "vmax": 2.0, "km": 10.0, "kon": 0.05, "koff": 0.02}


@pytest.mark.slow
@pytest.mark.timeout(900)  # 77 s of CPU measured under load 20–30; wall several times that
def test_tangent_started_profile_matches_the_full_restricted_fits(tmp_path, monkeypatch):
    rng = np.random.default_rng(7)
    rows = []
    for chip, dose_um in (("low", 5.0), ("high", 100.0)):
        experiment = Experiment(dose_um, (0.5, 2, 6, 12, 24, 48), observables=("drug_medium", "metabolite_medium"))
        rows += lab_rows(chip, experiment, TRUTH, 0.1, rng)
    problems: dict = {}
    record = fit_lab(
        write_lab_dataset(rows, tmp_path / "lab.csv"),
        method="pooled",
        estimate=["vmax", "km"],
        fix={"ps": 0.5, "kon": 0.05, "koff": 0.02},
        problems=problems,
    )
    problem, _ = problems["pooled"]
    x_hat = profiles.optimum(problem, record)
    grid = record.theta["km"].estimate * np.exp(np.array([-0.8, -0.4, 0.4, 0.8]))
    fast = profiles.profile_grid(problem, x_hat, "km", grid)
    # the method before: every point a full restricted fit from its neighbour's optimum
    monkeypatch.setattr(profiles._Exact, "_along_tangent", lambda self, x, i: x)
    monkeypatch.setattr(profiles, "PROFILE_DECREMENT_TOL", 1e-6)
    full = profiles.profile_grid(problem, x_hat, "km", grid)
    assert np.all(np.isfinite(fast.delta)) and fast.delta.max() > 3.84  # the grid reaches past the 95 % threshold
    np.testing.assert_allclose(fast.delta, full.delta, atol=2e-3)
