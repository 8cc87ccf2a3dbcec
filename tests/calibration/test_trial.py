"""Virtual control arms (#14 item 3): PROCOVA simulation, analysis, sizing and the trial file."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from typer.testing import CliRunner

from calibration.trial import (
    TrialError,
    analyse_arms,
    procova_size_keeping_power,
    sample_size,
    simulate_trials,
    t_test_power,
    trial_design_from_dict,
)
from ui.cli.app import app

runner = CliRunner()
EXAMPLE = "examples/trials/procova_liver_enzyme.toml"


def test_type_one_error_under_the_null_is_nominal_over_4000_trials():
    sim = simulate_trials(n_treatment=60, n_control=60, effect=0.0, sd=10.0, correlation=0.6, n_trials=4000, seed=11)
    for estimates in (sim.unadjusted, sim.procova):
        assert 0.035 <= estimates.rejection_rate(0.05) <= 0.065


@pytest.mark.parametrize("rho", [0.5, 0.7])
def test_procova_size_keeping_the_power_shrinks_by_one_minus_rho_squared(rho):
    design = dict(n_treatment=100, n_control=100, effect=4.0, sd=10.0, correlation=rho)
    unadjusted_power = simulate_trials(**design, n_trials=4000, seed=5).unadjusted.rejection_rate(0.05)
    size = procova_size_keeping_power(**design, target_power=unadjusted_power, alpha=0.05, n_trials=4000, seed=7)
    assert abs(size.scale - (1 - rho**2)) <= 0.10 * (1 - rho**2)
    assert size.n_control == math.ceil(100 * size.scale)
    analytic = sample_size(effect=4.0, sd=10.0, correlation=rho)
    assert abs(analytic.reduction - (1 - rho**2)) <= 0.10 * (1 - rho**2)


def test_vectorised_analyses_equal_statsmodels_trial_by_trial():
    rng = np.random.default_rng(2)
    y_t, y_c = rng.normal(1.0, 2.0, (5, 13)), rng.normal(0.0, 2.0, (5, 9))
    m_t, m_c = y_t * 0.5 + rng.normal(size=(5, 13)), y_c * 0.5 + rng.normal(size=(5, 9))
    raw, adj = analyse_arms(y_t, y_c, m_t, m_c)
    for i in range(5):
        y = np.concatenate([y_t[i], y_c[i]])
        t = np.r_[np.ones(13), np.zeros(9)]
        m = np.concatenate([m_t[i], m_c[i]])
        for est, exog in ((raw, np.column_stack([np.ones(22), t])), (adj, np.column_stack([np.ones(22), t, m]))):
            fit = sm.OLS(y, exog).fit()
            assert est.effect[i] == pytest.approx(fit.params[1], rel=1e-10)
            assert est.se[i] == pytest.approx(fit.bse[1], rel=1e-10)
            assert est.p_value[i] == pytest.approx(fit.pvalues[1], rel=1e-8)


def _lstsq_ancova(y, t, m, alpha=0.05):
    x = np.column_stack([np.ones_like(y), t, m])
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ beta
    df = len(y) - 3
    cov = np.linalg.inv(x.T @ x) * (resid @ resid / df)
    se = math.sqrt(cov[1, 1])
    half = stats.t.ppf(1 - alpha / 2, df) * se
    return beta[1], se, beta[1] - half, beta[1] + half, 2 * stats.t.sf(abs(beta[1] / se), df)


def test_trial_analyze_agrees_with_an_independent_least_squares_ancova(tmp_path):
    rng = np.random.default_rng(8)
    n = 80
    arm = np.where(rng.random(n) < 0.5, "placebo", "active")
    m = rng.normal(40, 6, n)
    y = 0.9 * m - 3.0 * (arm == "active") + rng.normal(0, 4, n)
    path = tmp_path / "trial.csv"
    path.write_text(
        "id,group,y,twin\n"
        + "".join(f"{i},{a},{float(v)!r},{float(p)!r}\n" for i, (a, v, p) in enumerate(zip(arm, y, m)))
    )
    out = runner.invoke(
        app, ["trial", "analyze", str(path), "--outcome", "y", "--arm", "group", "--prognostic", "twin", "--json"]
    )
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    estimate, se, low, high, p = _lstsq_ancova(y, (arm == "active").astype(float), m)
    got = result["procova"]
    for key, expected in (("estimate", estimate), ("se", se), ("ci_low", low), ("ci_high", high), ("p_value", p)):
        assert got[key] == pytest.approx(expected, rel=1e-9)
    assert result["n_treatment"] == int((arm == "active").sum())
    assert 0 < result["variance_reduction"] < 1
    assert result["unadjusted"]["se"] > got["se"]


def test_size_matches_the_noncentral_t_power_it_reports():
    r = sample_size(effect=4.0, sd=10.0, correlation=0.6, power=0.8)
    for sizes, sd_res, cov in ((r.unadjusted, 10.0, 0), (r.procova, 8.0, 1)):
        assert sizes.power >= 0.8
        smaller = t_test_power(
            n_treatment=sizes.n_treatment - 1,
            n_control=sizes.n_control - 1,
            effect=4.0,
            sd_residual=sd_res,
            alpha=0.05,
            covariates=cov,
        )
        assert smaller < 0.8  # the smallest size reaching the power


def test_simulate_command_on_the_example_trial():
    out = runner.invoke(app, ["trial", "simulate", EXAMPLE, "--json"])
    assert out.exit_code == 0, out.output
    s = json.loads(out.stdout)
    analytic = t_test_power(n_treatment=100, n_control=100, effect=4.0, sd_residual=10.0, alpha=0.05)
    assert s["analyses"]["unadjusted"]["power"] == pytest.approx(analytic, abs=0.02)
    assert s["analyses"]["procova"]["power"] > s["analyses"]["unadjusted"]["power"]
    assert s["size_keeping_power"]["n_control"] < 100


_GOOD = {
    "name": "x",
    "arms": {"treatment": 10, "control": 10},
    "outcome": {"sd": 1.0, "effect": 1.0},
    "prognostic": {"correlation": 0.5},
}


@pytest.mark.parametrize(
    "section, key, value, says",
    [
        ("prognostic", "correlation", 1.0, "prognostic.correlation"),
        ("prognostic", "correlation", -1.0, "prognostic.correlation"),
        ("outcome", "sd", float("inf"), "outcome.sd"),
        ("outcome", "sd", 0.0, "outcome.sd"),
        ("arms", "control", 1, "arms.control"),
        ("arms", "control", True, "arms.control"),
        ("arms", "color", 1, "unknown key arms.color"),
        ("simulation", "n_trials", 10, "simulation.n_trials"),
    ],
)
def test_trial_file_is_checked_strictly(section, key, value, says):
    data = json.loads(json.dumps(_GOOD))
    data.setdefault(section, {})[key] = value
    with pytest.raises(TrialError, match=f"^t.toml: .*{says}.*; fix: "):
        trial_design_from_dict(data, "t.toml")


def test_bad_trial_file_ends_in_one_line_and_exit_2(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(
        'name = "x"\n[arms]\ntreatment = 10\ncontrol = 10\n[outcome]\nsd = nan\neffect = 1\n'
        "[prognostic]\ncorrelation = 0.5\n"
    )
    out = runner.invoke(app, ["trial", "simulate", str(path)])
    assert out.exit_code == 2
    lines = out.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path} line 6: outcome.sd") and "fix:" in lines[0]
    assert "Traceback" not in out.output


def test_cli_module_imports_no_numerical_library():
    import subprocess
    import sys

    code = (
        "import sys, ui.cli.trial; heavy = [m for m in ('numpy', 'scipy', 'statsmodels', 'pandas') "
        "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60).returncode == 0
