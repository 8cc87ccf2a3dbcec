"""Sequential update: warm-started scoring follows the data and lands where a full refit does."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.errors import CalibrationError
from calibration.individual import fit_individual
from calibration.insilico import CHIP_CONSTANTS
from calibration.sequential import LabProblemFactory, SequentialFit
from twin.chip import Dose, Sample, simulate_chip

TRUTH = {"ps": 0.5, "vmax": 2.0, "km": 10.0, "kon": 0.05, "koff": 0.02, "kmax": 0.1, "ec50": 50.0, "hill": 2.0,
         "ocr": 150.0}
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
            rows.append({"chip": "c", "time_h": t, "event": "observation", "observable": "oxygen",
                         "value": value[round(t, 6)][1] + 0.5 * rng.standard_normal(), "unit": "percent"})
        else:
            drug = value[round(t - 1e-9, 6)][0] * (1 + 0.1 * rng.standard_normal())
            rows += [{"chip": "c", "time_h": t, "event": "observation", "observable": "drug_medium", "value": drug},
                     {"chip": "c", "time_h": t, "event": "sample", "volume_ml": 0.02}]
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
        errors.append(abs(np.log(record.theta["vmax"]["estimate"] / TRUTH["vmax"])))
        ses.append(record.theta["vmax"]["rse_percent"] / 100)
    assert record.n_observations == len([r for r in rows if r["event"] == "observation"])
    assert ses[-1] < 0.5 * ses[0] and all(b <= a * 1.05 for a, b in zip(ses, ses[1:]))
    assert errors[-1] < 3 * ses[-1] and np.mean(errors[-3:]) < np.mean(errors[:3])
    assert tracker.n_predictions / len(errors) < 25  # a few scoring iterations per update, not a fresh search

    full = fit_individual(factory(), {"vmax": 3.0, "ocr": 120.0})
    for name in ESTIMATE:
        se = full.theta[name]["rse_percent"] / 100
        assert abs(np.log(record.theta[name]["estimate"] / full.theta[name]["estimate"])) < 0.2 * se
        assert record.theta[name]["rse_percent"] == pytest.approx(full.theta[name]["rse_percent"], rel=0.15)
    assert record.minus2ll == pytest.approx(full.minus2ll, abs=0.02)


def test_rows_out_of_order_and_other_chips_are_refused():
    rows = stream(hours=3.0)
    factory = factory_for(rows)
    with pytest.raises(CalibrationError, match="before the stream's last row"):
        factory([{"chip": "c", "time_h": 1.0, "event": "observation", "observable": "oxygen", "value": 70}])
    with pytest.raises(CalibrationError, match="this stream follows 'c'"):
        factory([{"chip": "d", "time_h": 5.0, "event": "observation", "observable": "oxygen", "value": 70}])
