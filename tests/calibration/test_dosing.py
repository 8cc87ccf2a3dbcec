"""Dose optimisation: MAP from a patient's levels, PTA over a regimen menu, chip doses, refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from calibration.dosing.optimise import (
    library_prior,
    map_posterior,
    optimise_chip_dose,
    optimise_regimen,
    parse_window,
    record_prior,
)
from calibration.errors import CalibrationError
from twin.drugs import load_drug
from twin.patients import IndividualPK, concentration_mg_per_l, parse_regimen, patient_from_dict

PATIENT = {"age": "54 years", "sex": "female", "weight": "72 kg", "serum_creatinine": "0.9 mg/dL"}
CHIP_FIT = {
    "model": "liver_chip",
    "correlation": {},
    "theta": {
        n: {"estimate": v, "ci95": [v / 1.2, v * 1.2]}
        for n, v in {"ps": 0.5, "vmax": 2.0, "km": 10.0, "kon": 0.05, "koff": 0.02}.items()
    },
}


def levels_frame(pk: IndividualPK, times_h, cv: float, seed: int = 0) -> pd.DataFrame:
    """Levels of a patient on 100 mg q12h (6 doses), with proportional noise ``cv``."""
    regimen = parse_regimen("100 mg q12h x6 oral")
    c = concentration_mg_per_l(pk, regimen, times_h)[0] * (
        1 + cv * np.random.default_rng(seed).standard_normal(len(times_h))
    )
    doses = [dict(ID=1, TIME=12.0 * k, AMT=100.0, EVID=1, CMT=1, DV=0.0) for k in range(6)]
    observed = [dict(ID=1, TIME=t, AMT=0.0, EVID=0, CMT=2, DV=v) for t, v in zip(times_h, c)]
    return pd.DataFrame(doses + observed).sort_values(["TIME", "EVID"], ascending=[True, False])


@pytest.fixture(scope="module")
def setting():
    drug = load_drug("metoprolol")
    prior, pk = library_prior(drug, patient_from_dict(PATIENT))
    truth = IndividualPK(
        np.array([2 * prior["cl"][0]]), np.array([prior["v"][0]]), np.array([prior["ka"][0]]), pk.f_oral, pk.fu_p
    )  # this patient clears twice as fast as the typical one
    return prior, pk, truth, {"f1": float(pk.f_oral[0])}


def _cl(posterior) -> float:
    return posterior.summary()["cl"]["estimate"]


def test_map_shrinks_towards_the_population_with_sparse_data_and_the_data_with_rich_data(setting):
    prior, pk, truth, fixed = setting
    typical, true_cl = prior["cl"][0], float(truth.cl_l_per_h[0])
    sparse = map_posterior(levels_frame(truth, [30.0], 0.0), prior, fixed=fixed, error_cv=0.5)
    rich = map_posterior(
        levels_frame(truth, [1, 2, 4, 6, 11.5, 61, 63, 66, 71.5], 0.05), prior, fixed=fixed, error_cv=0.05
    )
    assert abs(np.log(_cl(sparse) / typical)) < abs(np.log(_cl(sparse) / true_cl))  # nearer the prior
    assert abs(np.log(_cl(rich) / true_cl)) < 0.08  # the data win
    width = {
        name: np.log(p.summary()["cl"]["ci95"][1] / p.summary()["cl"]["ci95"][0])
        for name, p in (("sparse", sparse), ("rich", rich))
    }
    assert width["rich"] < 0.5 * width["sparse"]


def test_chosen_regimen_has_the_highest_pta_of_the_menu(setting):
    prior, pk, truth, fixed = setting
    posterior = map_posterior(levels_frame(truth, [2, 11.5, 62, 71.5], 0.1), prior, fixed=fixed)
    plan = optimise_regimen(
        posterior, parse_window("auc=0.4:0.8"), [25, 50, 100, 200], [8, 12, 24], pk=pk, n_samples=1000
    )
    assert len(plan.candidates) == 12
    assert plan.best.pta == max(c.pta for c in plan.candidates if c.safe) and plan.best.pta >= 0.5
    assert 0.4 <= plan.best.median <= 0.8
    trough = optimise_regimen(
        posterior, parse_window("ctrough=0.01:0.03"), [25, 50, 100, 200], [8, 12, 24], pk=pk, n_samples=1000
    )
    assert trough.best.pta == max(c.pta for c in trough.candidates)


def test_toxicity_margin_excludes_regimens(setting):
    prior, pk, truth, fixed = setting
    posterior = map_posterior(levels_frame(truth, [2, 11.5, 62, 71.5], 0.1), prior, fixed=fixed)
    target = parse_window("auc=0.4:0.8")
    free = optimise_regimen(posterior, target, [50, 100, 200], [8, 12, 24], pk=pk, n_samples=500)
    cmax = free.best.median  # any regimen's unbound Cmax,ss of about this order; a tight EC50 rules out big doses
    with pytest.raises(CalibrationError, match="no candidate is safe"):
        optimise_regimen(
            posterior, target, [50, 100, 200], [8, 12, 24], pk=pk, ec50_mg_per_l=1e-4 * cmax, n_samples=500
        )
    assert "no chip EC50" in free.notes[0]


def test_infeasible_target_says_what_to_change(setting):
    prior, pk, truth, fixed = setting
    posterior = map_posterior(levels_frame(truth, [2, 11.5, 62, 71.5], 0.1), prior, fixed=fixed)
    with pytest.raises(
        CalibrationError,
        match=r"no candidate reaches auc 40–60 mg·h/L with PTA ≥ 0.5; the best is "
        r"0% at 200 mg q\d+h .*widen the window or allow larger doses",
    ):
        optimise_regimen(posterior, parse_window("auc=40:60"), [50, 100, 200], [8, 12, 24], pk=pk, n_samples=500)


def test_record_prior_and_bad_inputs():
    record = {
        "theta": {"cl": {"estimate": 4.0}, "v": {"estimate": 70.0}, "ka": {"estimate": 1.0}},
        "omega": {"cl": {"variance": 0.09}, "v": {"variance": 0.04}},
    }
    assert record_prior(record) == {"cl": (4.0, 0.3), "v": (70.0, pytest.approx(0.2))}
    with pytest.raises(CalibrationError, match="not a population fit"):
        record_prior({"theta": {}, "omega": {}})
    with pytest.raises(CalibrationError, match="METRIC=LOW:HIGH"):
        parse_window("auc 40-60")
    assert parse_window("auc=50").low == pytest.approx(40.0)


def test_chip_dose_lands_inside_the_window():
    plan = optimise_chip_dose(CHIP_FIT, parse_window("conc=5:15"), (0.0, 24.0), n_samples=40)
    assert plan.best.pta >= 0.9 and 5 <= plan.best.median <= 15
    assert plan.best.pta == max(c.pta for c in plan.candidates)
    with pytest.raises(CalibrationError, match="no candidate is safe|no candidate reaches"):
        optimise_chip_dose(CHIP_FIT, parse_window("conc=5:15"), (0.0, 24.0), n_samples=20, viability_floor=0.99999999)
