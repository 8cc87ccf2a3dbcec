"""NONMEM 7.4.3's own predictions for NONMEM's dosing-event edge cases (nlmixr2data::nmtest).

Model and comparison as in rxode2's test of this file (tests/testthat/test-nmtest.R):
oral_1cpt with CL 1.1, V 20, KA 1.5; F2, ALAG2, R2, D2 from the columns bioav, lagt, rat2,
dur2 (doses into the depot get none); cp = central/(V/1000), i.e. scale 1000. Our criterion
is stricter than rxode2's (testthat's mean relative difference ≤ 0.1 over a subject): every
observation must satisfy |pred − cp| ≤ 0.1·|cp| + 1e-6, from the start times rxode2 uses
(NONMEM's steady state with a lag longer than II is not the regime's steady state before them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twin.dataset import read_dataset
from twin.pk import simulate_dataset

NMTEST = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "pk" / "nmtest.csv"
PARAMS = {"ka": 1.5, "cl": 1.1, "v": 20, "f2": "@bioav", "alag2": "@lagt", "r2": "@rat2", "d2": "@dur2"}
START_H = {
    **dict.fromkeys((409, 410, 411, 415, 510, 610, 709), 24.0),
    **dict.fromkeys((809, 909, 1009), 48.0),
    825: 96.0,
}
# NONMEM artefact: id 509 (lag 27.16 h > II 24 h, infusion) starts its SS at a negative cp and
# matches the regime's steady state only from t = 4 h; rxode2 passes it on the mean criterion.
POINTWISE_FROM_H = {509: 4.0}


@pytest.fixture(scope="module")
def predicted() -> pd.DataFrame:
    if not NMTEST.exists():
        pytest.skip(f"!!! reference data {NMTEST} missing: nmtest validation SKIPPED !!!")
    data = read_dataset(NMTEST)
    return simulate_dataset(data, "oral_1cpt", PARAMS, scale=1000.0)


def _compared(predicted: pd.DataFrame):
    observed = predicted[predicted["EVID"] == 0]
    for subject, rows in observed.groupby("ID", sort=False):
        yield int(subject), rows[rows["TIME"] >= START_H.get(int(subject), 0.0)]


def test_covers_all_54_subjects(predicted: pd.DataFrame) -> None:
    assert predicted["ID"].nunique() == 54
    assert predicted["IPRED"].notna().all()


def test_every_subject_matches_nonmem(predicted: pd.DataFrame) -> None:
    failures = {}
    for subject, rows in _compared(predicted):
        rows = rows[rows["TIME"] >= POINTWISE_FROM_H.get(subject, 0.0)]
        error = np.abs(rows["IPRED"] - rows["cp"])
        bad = error > 0.1 * np.abs(rows["cp"]) + 1e-6
        if bad.any():
            failures[subject] = rows.loc[bad, ["TIME", "cp", "IPRED"]].head(3).to_dict("records")
    assert not failures, f"{len(failures)} of 54 subjects differ from NONMEM: {failures}"


def test_every_subject_passes_rxode2s_criterion(predicted: pd.DataFrame) -> None:
    for subject, rows in _compared(predicted):
        mean_relative = np.mean(np.abs(rows["IPRED"] - rows["cp"])) / np.mean(np.abs(rows["cp"]))
        assert mean_relative <= 0.1, f"id {subject}: mean relative difference {mean_relative:.3f}"


def test_integrator_agrees_on_nmtest(predicted: pd.DataFrame) -> None:
    """The same events through solve_ivp: the exact solver is not right by accident."""
    data = read_dataset(NMTEST)
    some = data[data["ID"].isin([10, 12, 19, 20, 25, 26, 125, 410, 825])]
    ode = simulate_dataset(some, "oral_1cpt", PARAMS, scale=1000.0, engine="ode")
    exact = predicted.loc[some.index, "IPRED"]
    np.testing.assert_allclose(ode["IPRED"], exact, rtol=1e-5, atol=1e-6 * exact.abs().max())
