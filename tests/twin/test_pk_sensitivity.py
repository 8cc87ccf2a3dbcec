"""Sensitivities for calibration: central differences against analytic derivatives."""

from __future__ import annotations

import numpy as np
import pandas as pd

from twin.pk import DatasetModel, central_difference


def _bolus_data(times: np.ndarray, dose: float) -> pd.DataFrame:
    return pd.DataFrame(
        {"ID": 1, "TIME": np.r_[0.0, times], "AMT": np.r_[dose, 0 * times], "EVID": np.r_[1, 0 * times], "CMT": 1}
    )


def test_iv_bolus_sensitivities_match_analytic_derivatives() -> None:
    times, dose, cl, v = np.linspace(0.5, 24.0, 20), 100.0, 2.0, 15.0
    model = DatasetModel(_bolus_data(times, dose), "iv_1cpt", free=["cl", "v"])
    assert model.n_parameters() == 2
    ipred, s1 = model.simulate_s1([cl, v])
    c = dose / v * np.exp(-cl / v * times)
    np.testing.assert_allclose(ipred[1:], c, rtol=1e-12)
    d_cl = -times / v * c
    d_v = c * (-1 / v + cl * times / v**2)
    np.testing.assert_allclose(s1[1:, 0], d_cl, rtol=1e-7)
    np.testing.assert_allclose(s1[1:, 1], d_v, rtol=1e-7, atol=1e-9 * np.abs(d_v).max())


def test_free_dosing_parameter_rebuilds_the_schedule() -> None:
    times = np.linspace(0.5, 24.0, 20)
    model = DatasetModel(_bolus_data(times, 100.0), "oral_1cpt", free=["f1"], fixed={"ka": 1.0, "cl": 2.0, "v": 15.0})
    half, full = model.simulate([0.5]), model.simulate([1.0])
    np.testing.assert_allclose(half, 0.5 * full, rtol=1e-12)
    _, s1 = model.simulate_s1([0.5])
    np.testing.assert_allclose(s1[:, 0], full, rtol=1e-7, atol=1e-9)  # linear in F


def test_central_difference_of_a_known_function() -> None:
    jac = central_difference(lambda x: np.array([x[0] ** 3, np.exp(x[1]) * x[0]]), [2.0, 0.5])
    np.testing.assert_allclose(jac, [[12.0, 0.0], [np.exp(0.5), 2 * np.exp(0.5)]], rtol=1e-9)
