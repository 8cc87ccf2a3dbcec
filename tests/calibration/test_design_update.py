"""The design loop's fast posterior update (Gauss–Newton MAP + Laplace) learns from in-silico data."""

from __future__ import annotations

import numpy as np

from calibration.design.insilico import Experiment, lab_rows
from calibration.design.update import laplace_update, observed_from_rows

TRUTH = {"ps": 0.5, "vmax": 2.0, "km": 10.0, "kon": 0.05, "koff": 0.02}
NAMES = ("vmax", "km", "kon", "koff")


def test_update_moves_towards_the_truth_and_narrows_the_prior():
    rng = np.random.default_rng(4)
    prior = {n: (TRUTH[n] * 2.0, 1.0) for n in NAMES}
    data = []
    for dose, times in ((5.0, (1, 6, 24, 48)), (100.0, (0.5, 2, 12, 36))):
        experiment = Experiment(dose, times, 0.02)
        data.append(observed_from_rows(experiment, lab_rows("c", experiment, TRUTH, 0.05, rng)))
    post = laplace_update("liver_chip", NAMES, prior, data, {"drug_medium": 0.05}, fixed={"ps": 0.5})
    assert np.all(post.sd_log < 1.0)
    error_before = np.abs(np.log([prior[n][0] / TRUTH[n] for n in NAMES]))
    error_after = np.abs(post.mean_log - np.log([TRUTH[n] for n in NAMES]))
    assert error_after.sum() < 0.5 * error_before.sum()
    assert post.residual("drug_medium") == (0.0, 0.05)
