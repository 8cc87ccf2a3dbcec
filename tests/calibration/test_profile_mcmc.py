"""Profile likelihood and MCMC: honest intervals, open ends said out loud, Laplace agreement."""

from __future__ import annotations

import json

import numpy as np
import pytest

from calibration.estimate.error_models import ErrorModel
from calibration.estimate.individual import IndividualProblem, fit_individual
from calibration.io.plots import plot_fit_band, plot_profile
from calibration.uncertainty.mcmc import attach_mcmc, run_mcmc
from calibration.uncertainty.profile import CHI2_95, attach_profiles, optimum, profile_parameter

T = np.linspace(0.2, 10, 120)


def decay(p):
    return p["a"] * np.exp(-p["k"] * T)


def exp_problem(seed=1):
    rng = np.random.default_rng(seed)
    dv = decay({"a": 10.0, "k": 0.3}) + 0.3 * rng.standard_normal(T.size)
    return IndividualProblem(("a", "k"), decay, dv, ErrorModel("add"), bounds={"a": (0.1, 100), "k": (1e-3, 10)})


def test_profile_interval_matches_the_wald_interval_when_the_likelihood_is_quadratic(tmp_path):
    problem = exp_problem()
    record = fit_individual(problem, {"a": 5.0, "k": 0.5})
    prof = profile_parameter(problem, optimum(problem, record), "k")
    low, high = record.theta["k"].ci95
    assert prof.lower == pytest.approx(low, rel=0.01) and prof.upper == pytest.approx(high, rel=0.01)
    assert prof.notes == [] and prof.delta.min() > -1e-3 and prof.delta.max() > CHI2_95
    assert plot_profile(prof, tmp_path / "p.png").stat().st_size > 1000
    assert plot_fit_band(problem, record, tmp_path / "fit.png").stat().st_size > 1000


def test_flagged_parameters_are_profiled_and_open_ends_reported():
    """Only the product a·b is identified: the Hessian flags both, the profile is flat to the bounds."""
    problem0 = exp_problem()

    def product(p):
        return p["a"] * p["b"] * np.exp(-0.3 * T)

    problem = IndividualProblem(
        ("a", "b"), product, problem0.dv, ErrorModel("add"), bounds={"a": (0.1, 100), "b": (0.1, 100)}
    )
    record = fit_individual(problem, {"a": 5.0, "b": 1.0})
    assert any("not identified" in w for w in record.warnings)
    profiles = attach_profiles(problem, record)
    assert set(profiles) == {"a", "b"}
    assert profiles["a"].lower is None and profiles["a"].upper is None
    assert any("no lower limit within the bounds" in w for w in record.warnings)
    document = json.loads(record.to_json())
    assert document["theta"]["a"]["ci95_profile"] == [None, None]
    assert document["profiles"]["a"]["ci95"] == [None, None]


def test_mcmc_intervals_agree_with_laplace_within_monte_carlo_error():
    problem = exp_problem(seed=2)
    record = fit_individual(problem, {"a": 5.0, "k": 0.5})
    x_map = optimum(problem, record)
    calls = []
    result = run_mcmc(problem, x_map, n_steps=1200, seed=3, progress=lambda done, total: calls.append(done))
    assert calls[-1] == 1200 and 0.2 < result.acceptance_fraction < 0.8
    summary = result.summary()
    for name in ("a", "k"):
        log_sd = record.theta[name].rse_percent / 100
        laplace = np.log(record.theta[name].ci95)
        sampled = np.log(summary[name]["ci95"])
        assert np.all(np.abs(sampled - laplace) < 0.3 * log_sd), (name, sampled, laplace)
        assert abs(np.log(summary[name]["median"]) - x_map[problem.names.index(name)]) < 0.15 * log_sd


def test_attach_mcmc_writes_the_record():
    problem = exp_problem()
    record = fit_individual(problem, {"a": 5.0, "k": 0.5})
    attach_mcmc(problem, record, n_steps=200, seed=0)
    document = json.loads(record.to_json())["mcmc"]
    assert set(document["summary"]) == {"a", "k", "add_sd"} and document["n_draws"] == 150 * document["n_walkers"]
    assert any(w.startswith("MCMC:") for w in record.warnings) == (not document["autocorr_reliable"])
