"""The learning patient twin: levels simulated from a known patient narrow CL around the truth,
and the proposed regimen moves the predicted exposure into the target window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calibration.dosing.optimise import Window, library_prior
from calibration.dosing.tdm import current_regimen, learn
from calibration.errors import CalibrationError
from calibration.io.datasets import load_nonmem
from twin.drugs import load_drug
from twin.patients import IndividualPK, Regimen, concentration_mg_per_l, exposure, load_patient

PATIENT = Path(__file__).resolve().parents[2] / "examples" / "patients" / "p001.toml"
TIMES_H = (2.0, 11.5, 26.0, 35.5, 62.0, 71.5, 83.5, 95.5)  # a peak and a trough on days 1, 2, 3 and 4
CL_FACTOR = 1.8  # the true patient clears 1.8 × faster than the library predicts (e.g. an unknown inducer)


def write_levels(path: Path, seed: int = 1, times_h=TIMES_H) -> float:
    """100 mg q12h metoprolol to a patient whose true CL is CL_FACTOR × typical; 10 % noise. Returns the true CL."""
    prior, pk = library_prior(load_drug("metoprolol"), load_patient(PATIENT))
    true_cl = prior["cl"][0] * CL_FACTOR
    truth = IndividualPK(np.array([true_cl]), np.array([prior["v"][0]]), np.array([1.0]), np.ravel(pk.f_oral)[:1], 0.9)
    times = np.asarray(times_h)
    noise = np.exp(0.1 * np.random.default_rng(seed).standard_normal(times.size))
    levels = concentration_mg_per_l(truth, Regimen(100, 12, 8, "oral"), times)[0] * noise
    rows = [dict(ID=1, TIME=12.0 * k, AMT=100, EVID=1, CMT=1, DV=".", MDV=1) for k in range(8)]
    rows += [dict(ID=1, TIME=t, AMT=0, EVID=0, CMT=2, DV=c, MDV=0) for t, c in zip(times, levels)]
    frame = pd.DataFrame(rows).sort_values(["TIME", "EVID"], ascending=[True, False], kind="stable")
    frame.to_csv(path, index=False)
    return true_cl


def _learn(path: Path, target: Window | None = None):
    drug = load_drug("metoprolol")
    prior, pk = library_prior(drug, load_patient(PATIENT))
    data, _ = load_nonmem(path)
    return learn(
        data, prior, pk, drug="metoprolol", target=target, strengths_mg=[50, 100, 150, 200, 300], n_samples=500
    )


def test_the_cl_interval_narrows_around_the_truth_as_levels_arrive(tmp_path):
    true_cl = write_levels(tmp_path / "levels.csv")
    learning = _learn(tmp_path / "levels.csv")
    widths = [np.log(s.cl_ci95[1] / s.cl_ci95[0]) for s in learning.steps]
    assert [s.n_levels for s in learning.steps] == list(range(len(TIMES_H) + 1))
    assert all(b <= a * 1.1 for a, b in zip(widths, widths[1:])), widths  # monotone, up to 10 % per level
    assert widths[-1] < 0.4 * widths[0]
    final = learning.steps[-1]
    assert final.cl_ci95[0] <= true_cl <= final.cl_ci95[1]
    assert learning.steps[0].cl_l_per_h < true_cl / 1.5  # the prior is well off; the data pull it to the truth
    assert final.cl_l_per_h == pytest.approx(true_cl, rel=0.15)
    troughs = [s.next_trough_mg_per_l for s in learning.steps]
    assert troughs[-1].width < 0.2 * troughs[0].width and all(t.low <= t.median <= t.high for t in troughs)
    assert learning.regimen.next_dose_h == 96.0 and learning.regimen.dose_mg == 100.0


def test_the_proposed_dose_moves_the_exposure_into_the_window(tmp_path):
    write_levels(tmp_path / "levels.csv")
    window = Window("auc", 0.8, 1.2)
    learning = _learn(tmp_path / "levels.csv", window)
    final = learning.steps[-1]
    assert learning.plan is not None and final.proposal == learning.plan.best.label("mg")
    _, pk = library_prior(load_drug("metoprolol"), load_patient(PATIENT))
    map_pk = IndividualPK(np.array([final.cl_l_per_h]), np.array([final.v_l]), np.array([1.0]), pk.f_oral, pk.fu_p)
    current = float(exposure(map_pk, Regimen(100, 12, 1, "oral")).auc_tau_ss[0])
    proposed = float(exposure(map_pk, Regimen(learning.plan.best.dose, 12, 1, "oral")).auc_tau_ss[0])
    assert current < window.low and window.low <= proposed <= window.high
    assert window.low <= learning.plan.best.median <= window.high and learning.plan.best.pta >= 0.8


def test_one_dose_without_an_interval_is_refused(tmp_path):
    frame = pd.DataFrame(
        [dict(ID=1, TIME=0.0, AMT=100, EVID=1, CMT=1, DV=".", MDV=1), dict(ID=1, TIME=2, AMT=0, EVID=0, CMT=2, DV=0.1)]
    )
    with pytest.raises(CalibrationError, match="--interval"):
        current_regimen(frame)
    assert current_regimen(frame, 8.0).next_dose_h == 8.0
    with pytest.raises(CalibrationError, match="positive"):
        current_regimen(frame, -8.0)


def test_two_patients_or_a_negative_level_are_refused(tmp_path):
    write_levels(tmp_path / "levels.csv")
    data, _ = load_nonmem(tmp_path / "levels.csv")
    prior, pk = library_prior(load_drug("metoprolol"), load_patient(PATIENT))
    other = data.assign(ID=2)
    with pytest.raises(CalibrationError, match="2 patients"):
        learn(pd.concat([data, other]), prior, pk)
    data.loc[data["EVID"] == 0, "DV"] = -data.loc[data["EVID"] == 0, "DV"]
    with pytest.raises(CalibrationError, match="not negative"):
        learn(data, prior, pk)
