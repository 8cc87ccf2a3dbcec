"""Sequential update: warm-started scoring follows the data and lands where a full refit does."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import least_squares

from calibration.design.insilico import CHIP_CONSTANTS
from calibration.errors import CalibrationError
from calibration.estimate.error_models import ErrorModel
from calibration.estimate.individual import IndividualProblem, fit_individual
from calibration.estimate.sequential import LabProblemFactory, SequentialFit, _into_box, _levenberg
from calibration.io.record import Estimate, FitRecord
from twin.chip import Dose, Sample, simulate_chip

TRUTH = {
    "ps": 0.5,
    "vmax": 2.0,
    "km": 10.0,
    "kon": 0.05,
    "koff": 0.02,
    "kmax": 0.1,
    "ec50": 50.0,
    "hill": 2.0,
    "ocr": 150.0,
}
ESTIMATE = ("vmax", "ocr")
DRUG_T = (0.5, 1.0, 1.5, 2.0, 3.0, 4.5, 6.0, 9.0, 12.0, 18.0, 23.5)


def stream(seed=0, hours=24.0):
    """Oxygen every 10 min (SD 0.5 %), drug samples (10 % CV), a 50 µM dose at t = 0."""
    rng = np.random.default_rng(seed)
    oxygen_t = np.arange(1, int(hours * 6) + 1) / 6
    events = [Dose(0.0, 50.0, 0.0)] + [Sample(t, 0.02) for t in DRUG_T]
    times = np.unique(np.concatenate([oxygen_t, np.array(DRUG_T) - 1e-9]))
    out = simulate_chip(TRUTH, events, times, {"V_m0": 1.0}, ["drug_medium", "oxygen"], method="odeint")
    value = dict(zip(np.round(times, 6), zip(out["drug_medium"], out["oxygen"])))
    rows = [{"chip": "c", "time_h": 0.0, "event": "dose", "amount_nmol": 50.0, "volume_ml": 0.0, **CHIP_CONSTANTS}]
    timeline = sorted([(t, 1) for t in oxygen_t] + [(t, 0) for t in DRUG_T])
    for t, is_oxygen in timeline:
        if is_oxygen:
            rows.append(
                {
                    "chip": "c",
                    "time_h": t,
                    "event": "observation",
                    "observable": "oxygen",
                    "value": value[round(t, 6)][1] + 0.5 * rng.standard_normal(),
                    "unit": "percent",
                }
            )
        else:
            drug = value[round(t - 1e-9, 6)][0] * (1 + 0.1 * rng.standard_normal())
            rows += [
                {"chip": "c", "time_h": t, "event": "observation", "observable": "drug_medium", "value": drug},
                {"chip": "c", "time_h": t, "event": "sample", "volume_ml": 0.02},
            ]
    return rows


def factory_for(rows):
    fixed = {k: v for k, v in TRUTH.items() if k not in ESTIMATE}
    return LabProblemFactory(rows, estimate=ESTIMATE, fix=fixed, error={"drug_medium": "prop", "oxygen": "add"})


def test_updates_move_toward_the_truth_and_equal_a_full_refit():
    rows = stream()
    factory = factory_for([r for r in rows if r["time_h"] <= 2.0])
    initial = fit_individual(factory(), {"vmax": 4.0, "ocr": 100.0})
    tracker = SequentialFit(factory, initial)
    errors, ses = [], []
    for low in np.arange(2.0, 24.0, 2.0):  # noqa: B007
        record = tracker.update([r for r in rows if low < r["time_h"] <= low + 2.0])
        assert record.converged, record.warnings
        errors.append(abs(np.log(record.theta["vmax"].estimate / TRUTH["vmax"])))
        ses.append(record.theta["vmax"].rse_percent / 100)
    assert record.n_observations == len([r for r in rows if r["event"] == "observation"])
    assert ses[-1] < 0.5 * ses[0] and all(b <= a * 1.05 for a, b in zip(ses, ses[1:]))
    assert errors[-1] < 3 * ses[-1] and np.mean(errors[-3:]) < np.mean(errors[:3])
    assert tracker.n_predictions / len(errors) < 25  # a few scoring iterations per update, not a fresh search

    full = fit_individual(factory(), {"vmax": 3.0, "ocr": 120.0})
    for name in ESTIMATE:
        se = full.theta[name].rse_percent / 100
        assert abs(np.log(record.theta[name].estimate / full.theta[name].estimate)) < 0.2 * se
        assert record.theta[name].rse_percent == pytest.approx(full.theta[name].rse_percent, rel=0.15)
    assert record.minus2ll == pytest.approx(full.minus2ll, abs=0.02)


def test_rows_out_of_order_and_other_chips_are_refused():
    rows = stream(hours=3.0)
    factory = factory_for(rows)
    with pytest.raises(CalibrationError, match="before the stream's last row"):
        factory([{"chip": "c", "time_h": 1.0, "event": "observation", "observable": "oxygen", "value": 70}])
    with pytest.raises(CalibrationError, match="this stream follows 'c'"):
        factory([{"chip": "d", "time_h": 5.0, "event": "observation", "observable": "oxygen", "value": 70}])


def _two_exponentials(bounds=None, seed=1):
    """y = e^(−a·t) + e^(−b·t): the textbook sloppy model, a long valley curved in log a, log b."""
    t = np.linspace(0.1, 5.0, 40)
    rng = np.random.default_rng(seed)
    dv = np.exp(-1.0 * t) + np.exp(-3.0 * t) + 0.01 * rng.standard_normal(t.size)
    problem = IndividualProblem(
        ("a", "b"), lambda p: np.exp(-p["a"] * t) + np.exp(-p["b"] * t), dv, ErrorModel("add"), bounds=bounds or {}
    )
    reference = least_squares(
        lambda x: problem.predict(problem.parameters(x)) - dv,
        [-0.5, 0.5],
        xtol=1e-14,
        ftol=1e-14,
        gtol=1e-14,
        bounds=np.log([[1e-3, 1e-3], [1e3, bounds["b"][1] if bounds else 1e3]]),
    )
    return problem, reference.x


def _start(a, b):
    return FitRecord(
        model="custom",
        model_version="",
        method="individual",
        converged=True,
        minus2ll=0.0,
        n_observations=0,
        n_subjects=1,
        n_estimated=3,
        theta={"a": Estimate(a), "b": Estimate(b)},
        sigma={"add_sd": 0.01},
    )


def test_scoring_follows_a_curved_valley_to_the_least_squares_optimum():
    """Straight damped steps stalled here (8 iterations, not converged); bent ones reach the optimum."""
    problem, best = _two_exponentials()
    tracker = SequentialFit(lambda rows=(): problem, _start(0.3, 8.0))
    record = tracker.update([])
    assert record.converged, record.warnings
    for k, name in enumerate(("a", "b")):
        se = record.theta[name].rse_percent / 100
        assert abs(np.log(record.theta[name].estimate) - best[k]) < 0.15 * se


def test_an_optimum_beyond_a_bound_ends_on_the_bound_and_converges():
    problem, best = _two_exponentials(bounds={"a": (1e-3, 1e3), "b": (1e-3, 2.0)})
    record = SequentialFit(lambda rows=(): problem, _start(0.3, 1.0)).update([])
    assert record.converged, record.warnings
    assert record.theta["b"].estimate == pytest.approx(2.0, rel=1e-9)
    assert np.log(record.theta["a"].estimate) == pytest.approx(best[0], abs=1e-3)


def test_the_trust_region_step_has_the_requested_scaled_length():
    h = np.array([[1e4, 99.0], [99.0, 1.0]])  # condition number ~1e6, as in the sloppy chip fits
    g, scale = np.array([3.0, -2.0]), np.sqrt(np.diag(h))
    assert _levenberg(h, g, scale, np.inf) == 0.0
    for radius in (10.0, 1.0, 0.01):
        step = np.linalg.solve(h + _levenberg(h, g, scale, radius) * np.diag(scale**2), -g)
        assert np.linalg.norm(step * scale) == pytest.approx(radius, rel=1e-6)
    inside = _into_box(np.array([0.0, 1.0]), np.array([4.0, 1.0]), np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    assert inside == pytest.approx([1.0, 0.0])  # the second component already presses on its bound
