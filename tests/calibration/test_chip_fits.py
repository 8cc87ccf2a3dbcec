"""Organ-chip fits from lab datasets: truth recovered, intervals honest, rows checked."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.design.insilico import Experiment, lab_rows, write_lab_dataset
from calibration.errors import CalibrationError
from calibration.estimate.lab_fit import fit_each_chip, fit_lab
from calibration.io.lab import read_lab_dataset

TRUTH = {"ps": 0.5, "vmax": 2.0, "km": 10.0, "kon": 0.05, "koff": 0.02}


def test_pooled_fit_of_two_dose_levels_recovers_the_truth(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for chip, dose_um in (("low", 5.0), ("high", 100.0)):
        experiment = Experiment(dose_um, (0.5, 2, 6, 12, 24, 48), observables=("drug_medium", "metabolite_medium"))
        rows += lab_rows(chip, experiment, TRUTH, 0.1, rng)
    path = write_lab_dataset(rows, tmp_path / "lab.csv")
    record = fit_lab(path, method="pooled", estimate=["vmax", "km", "kon", "koff"], fix={"ps": 0.5})
    assert record.converged and record.warnings == []
    assert record.n_subjects == 2 and set(record.sigma) == {"drug_medium.prop_cv", "metabolite_medium.prop_cv"}
    for name in ("vmax", "km", "kon", "koff"):
        low, high = record.theta[name].ci95
        assert low < TRUTH[name] < high, name


def test_individual_chip_intervals_cover_the_truth_at_the_nominal_rate(tmp_path):
    """50 simulated chips, each fitted alone: the 95 % intervals must hold the truth ~95 % of the time."""
    rng = np.random.default_rng(42)
    experiment = Experiment(60.0, (0.5, 1, 2, 4, 8, 12, 24, 36, 48))
    n = 50
    rows = [row for k in range(n) for row in lab_rows(f"chip{k}", experiment, TRUTH, 0.1, rng)]
    # one dataset, method "individual": every chip its own fit (run in lockstep, batched)
    path = write_lab_dataset(rows, tmp_path / "chips.csv")
    record = fit_lab(path, method="individual", estimate=["vmax", "km"], fix={"ps": 0.5, "kon": 0.05, "koff": 0.02})
    assert len(record.chips) == n and all(chip.n_subjects == 1 and chip.converged for chip in record.chips.values())
    hits = np.zeros(2)
    for chip in record.chips.values():
        hits += [chip.theta[name].ci95[0] < TRUTH[name] < chip.theta[name].ci95[1] for name in ("vmax", "km")]
    coverage = hits / n
    assert np.all(coverage >= 0.86), coverage  # binomial SD at n = 50 is 3.1 %: 3 SD below 95 %


def test_chips_fitted_together_equal_the_same_chips_fitted_one_at_a_time(tmp_path):
    rng = np.random.default_rng(5)
    rows = []
    for k in range(3):  # the coverage test's design (finite intervals)
        rows += lab_rows(f"chip{k}", Experiment(60.0, (0.5, 1, 2, 4, 8, 12, 24, 36, 48)), TRUTH, 0.1, rng)
    options = {"method": "individual", "estimate": ["vmax", "km"], "fix": {"ps": 0.5, "kon": 0.05, "koff": 0.02}}
    together = fit_lab(write_lab_dataset(rows, tmp_path / "all.csv"), **options).chips
    for name, chip in together.items():
        alone = fit_lab(write_lab_dataset([r for r in rows if r["chip"] == name], tmp_path / f"{name}.csv"), **options)
        assert chip.minus2ll == pytest.approx(alone.minus2ll, abs=1e-8)
        for parameter in ("vmax", "km"):
            assert chip.theta[parameter].estimate == pytest.approx(alone.theta[parameter].estimate, rel=1e-8)
            assert chip.theta[parameter].ci95 == pytest.approx(alone.theta[parameter].ci95, rel=1e-6)


def test_each_chip_from_its_own_start_in_one_batch_equals_fit_lab_chip_by_chip(tmp_path):
    """The closed loop's calibrate: every chip warm-started from its own last estimates, MAP with a prior."""
    rng = np.random.default_rng(11)
    rows = []
    for k in range(3):
        rows += lab_rows(f"chip{k}", Experiment(60.0, (0.5, 1, 2, 4, 8, 12, 24)), TRUTH, 0.1, rng)
    dataset = read_lab_dataset(write_lab_dataset(rows, tmp_path / "all.csv"))
    starts = {"chip0": {"vmax": 1.0}, "chip1": {"vmax": 3.0, "km": 5.0}, "chip2": {}}
    prior = {"vmax": (2.0, 1.0), "km": (10.0, 1.0)}
    batch = fit_each_chip(dataset, list(starts), estimate=["vmax", "km"], starts=starts, prior=prior)
    assert list(batch) == list(starts)
    for name, record in batch.items():
        alone = fit_lab({name: dataset[name]}, estimate=["vmax", "km"], init=starts[name], prior=prior)
        assert record.converged and record.minus2ll == pytest.approx(alone.minus2ll, abs=1e-6)
        assert record.individual == {name: {n: v.estimate for n, v in record.theta.items()}}
        for parameter in ("vmax", "km"):
            assert record.theta[parameter].estimate == pytest.approx(alone.theta[parameter].estimate, rel=1e-6)
    with pytest.raises(CalibrationError, match="no observations"):
        fit_each_chip(dataset, ["chip0", "chip9"], estimate=["vmax"])


def test_a_start_per_chip_is_refused_for_a_pooled_fit_and_for_a_chip_without_data(tmp_path):
    rows = lab_rows("chip0", Experiment(60.0, (1, 4, 12)), TRUTH, 0.1, np.random.default_rng(3))
    dataset = read_lab_dataset(write_lab_dataset(rows, tmp_path / "one.csv"))
    with pytest.raises(CalibrationError, match="a start per chip is for individual fits"):
        fit_lab(dataset, method="pooled", estimate=["vmax"], init={"chip0": {"vmax": 1.0}})
    with pytest.raises(CalibrationError, match="no observations of chip chip9"):
        fit_lab(dataset, estimate=["vmax"], init={"chip0": {"vmax": 1.0}, "chip9": {}})


@pytest.mark.parametrize(
    "row, message",
    [
        ({"event": "infusion"}, "line 3: unknown event 'infusion'"),
        ({"event": "observation", "observable": "glucose", "value": 1}, "line 3: unknown observable 'glucose'"),
        ({"event": "observation", "observable": "drug_medium", "value": 1, "unit": "percent"}, "does not convert"),
        ({"event": "sample", "volume_ml": ""}, "line 3: volume_ml is empty"),
    ],
)
def test_bad_rows_are_named_by_line(tmp_path, row, message):
    rows = [
        {"chip": "c", "time_h": 1.0, "event": "dose", "amount_nmol": 10, "volume_ml": 0},
        {"chip": "c", "time_h": 2.0, "event": "observation", "observable": "drug_medium", "value": 5, "unit": "uM"},
    ]
    rows.append({"chip": "c", "time_h": 3.0, **row})
    with pytest.raises(CalibrationError, match=message):
        fit_lab(write_lab_dataset(rows[:1] + rows[2:] + rows[1:2], tmp_path / "bad.csv"), estimate=["vmax"])


def test_rows_out_of_time_order_are_refused(tmp_path):
    rows = [
        {"chip": "c", "time_h": 5.0, "event": "dose", "amount_nmol": 10},
        {"chip": "c", "time_h": 2.0, "event": "observation", "observable": "drug_medium", "value": 5},
    ]
    with pytest.raises(CalibrationError, match="line 3: time 2 h is before"):
        fit_lab(write_lab_dataset(rows, tmp_path / "order.csv"), estimate=["vmax"])
