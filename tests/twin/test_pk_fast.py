"""The superposition predictor (twin.pk.fast) against the lockstep solver it must equal.

Same schedule, same parameters: the two differ by rounding only (≤ 1e-10 relative, with an
absolute floor of 1e-13 × the largest prediction for values that are exactly zero in one
and rounding noise in the other). Reference datasets: ../shared/reference/pk/README.md.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calibration.io.nonmem import NonmemProblem
from tests.twin.test_pk_exact import PARAMS as REGIMEN_PARAMS
from tests.twin.test_pk_exact import _regimens
from twin.catalogue import get_model
from twin.dataset import prepare_dataset, read_dataset
from twin.pk.fast import Superposition, decompose
from twin.pk.params import resolve_parameters
from twin.pk.schedule import RATE, build_schedule
from twin.pk.simulate import predict_resolved
from twin.pk.systems import observation_weights

PK = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "pk"
NMTEST_PARAMS = {"ka": 1.5, "cl": 1.1, "v": 20, "f2": "@bioav", "alag2": "@lagt", "r2": "@rat2", "d2": "@dur2"}


def _reference(name: str) -> Path:
    path = PK / name
    if not path.exists():
        pytest.skip(f"!!! reference data {path} missing: fast-path comparison SKIPPED !!!")
    return path


def _acop(name: str, single_dose: bool) -> pd.DataFrame:
    frame = pd.read_csv(_reference(name))
    frame = frame[frame["SD"] == (1 if single_dose else 0)].copy()
    frame.loc[frame["SS"] == 99, "SS"] = 0  # "not a steady-state record" in these files
    return prepare_dataset(frame)


def _compare(data, model, params, structural=None, rows=None, schedule=None) -> Superposition:
    spec = get_model(model)
    values = resolve_parameters(data, spec, params)
    if structural is not None:
        values = replace(values, structural={**values.structural, **structural})
    schedule = schedule or build_schedule(data, values)
    fast = Superposition(data, spec, values, schedule, rows=rows)
    lockstep = predict_resolved(data, spec, values, schedule)
    expected = lockstep if rows is None else lockstep[rows]
    got = fast.predict(values.structural)
    assert got.shape == expected.shape and np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-13 * np.abs(expected).max())
    return fast


def test_phenobarbital_random_subjects():
    data = read_dataset(_reference("pheno_sd.csv"))
    rng = np.random.default_rng(3)
    n = data["ID"].nunique()
    structural = {"cl": 0.005 * np.exp(0.5 * rng.standard_normal(n)), "v": np.exp(0.5 * rng.standard_normal(n))}
    fast = _compare(data, "iv_1cpt", {}, structural)
    assert fast.fallback_subjects.size == 0


@pytest.mark.parametrize("single_dose", [True, False])
@pytest.mark.parametrize(("name", "model"), [("Oral_1CPT.csv", "oral_1cpt"), ("Bolus_1CPT.csv", "iv_1cpt")])
def test_acop_datasets(name, model, single_dose):
    params = {"cl": "@CL", "v": "@V", **({"ka": "@KA"} if model == "oral_1cpt" else {})}
    fast = _compare(_acop(name, single_dose), model, params)
    assert fast.fallback_subjects.size == 0
    if not single_dose:  # the SS=1 records are superposed, not left to the lockstep solver
        assert fast.terms.steady.out.size > 0


def test_nmtest_every_subject_superposed():
    """All of NONMEM's event edge cases: infusions, RATE -1/-2, SS 1/2, lag > II, EVID 3/4."""
    data = read_dataset(_reference("nmtest.csv"))
    fast = _compare(data, "oral_1cpt", NMTEST_PARAMS)
    assert fast.fallback_subjects.size == 0
    assert fast.terms.infusion.out.size and fast.terms.steady.out.size


@pytest.mark.parametrize("model", list(REGIMEN_PARAMS))
def test_every_event_kind_one_and_two_compartments(model):
    data = prepare_dataset(_regimens(1, 2 if model.startswith("oral") else 1))
    fast = _compare(data, model, _regimen_params(model))
    assert fast.fallback_subjects.size == 0


def _regimen_params(model: str) -> dict:
    first, central = 1, (2 if model.startswith("oral") else 1)
    return {
        **REGIMEN_PARAMS[model],
        f"alag{first}": "@LAGT",
        f"f{first}": "@BIO",
        f"d{central}": "@DUR",
        f"r{central}": "@RT",
        f"alag{central}": "@LAGT",
        f"f{central}": "@BIO",
    }


def test_rows_any_shape_and_repeats():
    data = read_dataset(_reference("pheno_sd.csv"))
    rows = np.array([[5, 0, 5], [len(data) - 1, 3, 3]])
    _compare(data, "iv_1cpt", {"cl": 0.01, "v": 1.5}, rows=rows)


def test_nearly_equal_eigenvalues_go_to_the_integrator():
    data = prepare_dataset(_regimens(1, 2))
    n = data["ID"].nunique()
    ka = np.full(n, 1.3)
    structural = {"ka": ka, "cl": np.where(np.arange(n) == 2, 1.3 * 15.0, 2.0), "v": np.full(n, 15.0)}  # ka = CL/V
    weights = observation_weights(get_model("oral_1cpt"), "cp", structural)
    assert decompose("oral_1cpt", structural, weights)[2].tolist() == [False, False, True, False, False, False]
    _compare(data, "oral_1cpt", _regimen_params("oral_1cpt"), structural)


def test_subjects_the_terms_cannot_express_go_to_the_lockstep_solver():
    """A stop before its start (not built by NONMEM records; forced here) falls back per subject."""
    data = prepare_dataset(_regimens(1, 1))
    spec = get_model("iv_1cpt")
    schedule = build_schedule(data, resolve_parameters(data, spec, _regimen_params("iv_1cpt")))
    flip = (schedule.subject == 1) & (schedule.kind == RATE)
    schedule = replace(schedule, value=np.where(flip, -schedule.value, schedule.value))
    fast = _compare(data, "iv_1cpt", _regimen_params("iv_1cpt"), schedule=schedule)
    assert fast.fallback_subjects.tolist() == [1]


def test_non_linear_model_delegates():
    data = read_dataset(_reference("warfarin.csv"))
    fast = _compare(data[data["ID"] <= 3], "warfarin_pkpd", {})
    assert fast.fallback_subjects.tolist() == [0, 1, 2]


def test_nonmem_problem_predicts_as_before():
    data = read_dataset(_reference("pheno_sd.csv"))
    problem = NonmemProblem(data, "iv_1cpt", ("cl", "v"))
    phi = np.column_stack([np.full(len(problem.ids), 0.007), np.full(len(problem.ids), 1.4)])
    values = replace(problem.values, structural={"cl": phi[:, 0], "v": phi[:, 1]})
    before = predict_resolved(problem.data, problem.spec, values, problem.schedule)[problem.rows]
    np.testing.assert_allclose(problem.predict(phi), before, rtol=1e-12)


def test_beyond_the_term_budget_the_largest_subjects_go_to_the_lockstep_solver(monkeypatch):
    monkeypatch.setattr("twin.pk.terms.MAX_TERMS", 2000)
    data = read_dataset(_reference("nmtest.csv"))
    fast = _compare(data, "oral_1cpt", NMTEST_PARAMS)
    kept = fast.terms.bolus.out.size + fast.terms.infusion.out.size + fast.terms.steady.out.size
    assert 0 < fast.fallback_subjects.size < data["ID"].nunique() and 0 < kept <= 2000


@pytest.mark.parametrize("model", ["iv_1cpt", "oral_1cpt", "iv_2cpt"])
def test_overflowing_parameters_give_nan_for_that_subject_only(model):
    """An optimiser's wild step (V → 1e-322: CL/V overflows) must not stop a fit: NaN, not an error."""
    data = prepare_dataset(_regimens(1, 2 if model.startswith("oral") else 1))
    spec = get_model(model)
    values = resolve_parameters(data, spec, _regimen_params(model))
    fast = Superposition(data, spec, values, build_schedule(data, values))
    volume = "v1" if "v1" in values.structural else "v"
    structural = {name: value.copy() for name, value in values.structural.items()}
    structural["cl"][0], structural[volume][0] = 2e35, 4e-322
    with np.errstate(over="ignore", divide="ignore"):
        got = fast.predict(structural)
    first = (data["ID"] == data["ID"].iloc[0]).to_numpy()
    assert np.isnan(got[first]).all() and np.isfinite(got[~first]).all()


def test_closed_form_condition_does_not_overflow():
    """ka near the float limit (an optimiser's step) is far from ka = CL/V: no integrator for it."""
    structural = {"ka": np.array([7.7e307, 1.3]), "cl": np.array([1.1e102, 19.5]), "v": np.array([5.4e190, 15.0])}
    weights = observation_weights(get_model("oral_1cpt"), "cp", structural)
    assert decompose("oral_1cpt", structural, weights)[2].tolist() == [False, True]
