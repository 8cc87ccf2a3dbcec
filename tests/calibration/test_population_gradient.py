"""The analytic outer gradient of the FOCE-I objective (issue #11) against differences of the OFV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from calibration.estimate.error_models import ErrorModel
from calibration.estimate.population import Foce, PopulationModel, fit_population
from calibration.io.nonmem import NonmemProblem
from twin.dataset import read_dataset

PK = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "pk"
PHENO_THETA0 = {"theta1": 0.005, "theta2": 1.0, "theta3": 0.1}


def _pheno(error: str = "prop"):
    path = PK / "pheno_sd.csv"
    if not path.exists():
        pytest.skip(f"!!! reference data {path} missing: gradient check SKIPPED !!!")
    data = read_dataset(path)
    problem = NonmemProblem(data, "iv_1cpt", ("cl", "v"))
    first = data.groupby("ID", sort=False).first()
    weight, apgar = first["WT"].to_numpy(), first["APGR"].to_numpy()

    def individual(theta, eta):
        cl = theta[0] * weight * np.exp(eta[:, 0])
        v = theta[1] * weight * (1 + theta[2] * (apgar < 5)) * np.exp(eta[:, 1])
        return np.stack([cl, v], axis=1)

    model = PopulationModel(
        ("theta1", "theta2", "theta3"),
        ("cl", "v"),
        individual,
        problem.predict,
        ErrorModel(error),
        phi_names=("cl", "v"),
    )
    return model, problem.population_data()


def _differences(objective: Foce, x: np.ndarray, h: float = 1e-3) -> np.ndarray:
    """Five-point central differences of the OFV (truncation O(h⁴); modes re-solved at each point)."""
    out = np.zeros(x.size)
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = h
        out[i] = (
            -objective.ofv(x + 2 * e) + 8 * objective.ofv(x + e) - 8 * objective.ofv(x - e) + objective.ofv(x - 2 * e)
        ) / (12 * h)
    return out


@pytest.mark.parametrize("error, sigma", [("prop", [0.12]), ("comb", [0.5, 0.1])])
def test_analytic_gradient_matches_differences_of_the_ofv_on_pheno(error, sigma):
    """At a non-optimal point (θ, ω², σ all off the estimates), component by component."""
    model, data = _pheno(error)
    objective = Foce(model, data)
    x = objective.pack(np.array([0.0052, 1.05, 0.25]), np.array([0.05, 0.02]), np.array(sigma))
    analytic = objective.gradient(x)
    numeric = _differences(objective, x)
    assert np.all(np.abs(numeric) > 0.1)  # not at an optimum: every component is informative
    np.testing.assert_allclose(analytic, numeric, rtol=1e-4)


def test_analytic_and_difference_fits_agree_on_pheno():
    model, data = _pheno()
    new = fit_population(model, data, PHENO_THETA0, sigma0=np.array([0.1]), covariance=False)
    old = fit_population(model, data, PHENO_THETA0, sigma0=np.array([0.1]), covariance=False, gradient="differences")
    assert new.converged and old.converged
    assert new.minus2ll == pytest.approx(586.27606, abs=1e-3)
    assert new.minus2ll <= old.minus2ll + 1e-4
    for name in PHENO_THETA0:
        assert new.theta[name].estimate == pytest.approx(old.theta[name].estimate, rel=1e-3), name


def test_exact_newton_finds_the_same_modes():
    """The inner problem by exact Newton and by the expected-information steps: same modes, same OFV."""
    model, data = _pheno()
    exact, expected = Foce(model, data), Foce(model, data, newton="expected")
    x = exact.pack(np.array([0.0047, 0.98, 0.16]), np.array([0.03, 0.03]), np.array([0.115]))
    assert exact.ofv(x) == pytest.approx(expected.ofv(x), abs=1e-6)
    np.testing.assert_allclose(exact.eta, expected.eta, atol=1e-6)


def test_closed_form_prediction_derivatives_match_differences(tmp_path):
    """twin.pk.fast's closed-form ∂f/∂log p and ∂²f/∂log p² (iv_1cpt boluses; oral_1cpt with steady states)."""
    from calibration.estimate.foce_gradient import predictor_derivatives

    oral = PK / "Oral_1CPT.csv"
    if not oral.exists():
        pytest.skip(f"!!! reference data {oral} missing !!!")
    import pandas as pd

    frame = pd.read_csv(oral)
    frame = frame[(frame["SD"] == 0) & (frame["ID"] <= 20)].copy()
    frame.loc[frame["SS"] == 99, "SS"] = 0
    frame.to_csv(tmp_path / "oral.csv", index=False)
    pheno_data = read_dataset(PK / "pheno_sd.csv")
    cases = [
        (NonmemProblem(pheno_data, "iv_1cpt", ("cl", "v")), {"cl": 0.005, "v": 1.0}),
        (
            NonmemProblem(read_dataset(tmp_path / "oral.csv"), "oral_1cpt", ("ka", "cl", "v")),
            {"ka": 1.0, "cl": 4.0, "v": 70.0},
        ),
    ]
    rng = np.random.default_rng(3)
    for problem, typical in cases:
        n = len(problem.ids)
        phi = np.array([typical[name] for name in problem.phi_names]) * np.exp(
            0.3 * rng.standard_normal((n, len(typical)))
        )
        structural = {**problem.values.structural, **{name: phi[:, k] for k, name in enumerate(problem.phi_names)}}
        f, jac, hess = problem.predictor.predict_derivatives(structural, problem.phi_names)
        ref_f, ref_jac, ref_hess = predictor_derivatives(lambda psi: problem.predict(np.exp(psi)), np.log(phi))
        mask = problem.mask
        np.testing.assert_allclose(f[mask], ref_f[mask], rtol=1e-12)
        assert np.max(np.abs(jac - ref_jac)[mask]) < 1e-6 * np.abs(ref_jac[mask]).max()
        assert np.max(np.abs(hess - ref_hess)[mask]) < 1e-5 * np.abs(ref_hess[mask]).max()


def test_auto_keeps_differences_for_predictors_without_closed_forms():
    """An arbitrary predictor (a chip's integrator, say) is not smooth to rounding: the former path."""
    from dataclasses import replace

    from calibration.estimate.population import resolve_gradient

    model, data = _pheno()
    assert Foce(model, data).smooth and Foce(model, data).newton == "exact"
    opaque = Foce(replace(model, predict=lambda phi: model.predict(phi)), data)
    assert not opaque.smooth and opaque.newton == "expected"
    assert resolve_gradient(opaque, "auto") == "differences"
    assert resolve_gradient(Foce(model, data), "auto") == "analytic"
