"""A chip fit finished by its covariance step's run: scoring hands over at a loose decrement, its last
step is taken unchecked and the covariance run (copies of each chip in lockstep, at the fit's
tolerance) checks it. The outcome must be the full fit's: the same optimum and standard errors as
scoring to 1e-9 with a covariance step solved at rtol 1e-7."""

from __future__ import annotations

import numpy as np
import pytest

import calibration.estimate.chip_jacobian as chip_jacobian
from calibration.design.insilico import Experiment, lab_rows, write_lab_dataset
from calibration.estimate.covariance_step import FINISHED_DECREMENT, observed_information, scoring_with_information
from calibration.estimate.lab_fit import fit_lab
from calibration.estimate.scoring import ScoringResult, derivatives, fisher_scoring, objective_from
from calibration.uncertainty import profile as profiles

TRUTH = {"ps": 0.5, "vmax": 2.0, "km": 10.0, "kon": 0.05, "koff": 0.02}


@pytest.fixture(scope="module")
def pooled(tmp_path_factory):
    """A pooled three-chip fit of vmax, km and kon (the fast path), its problem and its record."""
    rng = np.random.default_rng(11)
    rows = []
    for chip, dose_um in (("low", 5.0), ("mid", 30.0), ("high", 120.0)):
        experiment = Experiment(dose_um, (0.5, 2, 6, 12, 24, 48), observables=("drug_medium", "metabolite_medium"))
        rows += lab_rows(chip, experiment, TRUTH, 0.1, rng)
    problems: dict = {}
    record = fit_lab(
        write_lab_dataset(rows, tmp_path_factory.mktemp("handover") / "lab.csv"),
        method="pooled",
        estimate=["vmax", "km", "kon"],
        fix={"ps": 0.5, "koff": 0.02},
        error="prop",
        problems=problems,
    )
    problem, _ = problems["pooled"]
    return problem, record


@pytest.fixture(scope="module")
def reference(pooled):
    """Scoring to a decrement of 1e-9 at rtol 1e-7, and the observed information at rtol 1e-7 (not in lockstep)."""
    problem, record = pooled
    jacobian = problem.predict_jacobian
    saved = jacobian.rtol, jacobian.atol, chip_jacobian.TIGHT_RTOL, chip_jacobian.TIGHT_ATOL
    jacobian.rtol, jacobian.atol = 1e-7, 1e-10
    chip_jacobian.TIGHT_RTOL, chip_jacobian.TIGHT_ATOL = 1e-7, 1e-10
    try:
        start = profiles.optimum(problem, record)
        result = fisher_scoring(problem, start, decrement_tol=1e-9)
        hessian = observed_information(problem, result.x)
    finally:
        jacobian.rtol, jacobian.atol, chip_jacobian.TIGHT_RTOL, chip_jacobian.TIGHT_ATOL = saved
    return result, hessian


def _standard_errors(hessian: np.ndarray) -> np.ndarray:
    return np.sqrt(np.diag(np.linalg.inv(hessian / 2)))  # −2LL's Hessian / 2 = the information


def test_the_handed_over_fit_is_the_full_fit(pooled, reference):
    problem, record = pooled
    full, hessian = reference
    assert record.converged and full.converged
    se = _standard_errors(hessian)
    x = profiles.optimum(problem, record)
    # within 0.005 standard errors of the full optimum, −2LL within FINISHED_DECREMENT plus the
    # integrator's error at rtol 1e-5
    assert np.all(np.abs(x - full.x) < 0.005 * se), (x - full.x) / se
    assert record.minus2ll == pytest.approx(full.value, abs=FINISHED_DECREMENT + 1e-3)
    reported = np.array([record.theta[name].rse_percent for name in problem.names]) / 100
    np.testing.assert_allclose(reported, se[: problem.n_model], rtol=1e-3)


def test_a_last_step_that_falls_short_is_refitted(pooled, reference):
    """A hand-over whose information overstates the curvature threefold: its unchecked step goes a third
    of the way, the check sees the decrement still too large, and scoring goes on to the full optimum."""
    problem, _ = pooled
    full, hessian = reference
    x = full.x + np.r_[0.01, -0.01, 0.005, 0.0, 0.0]
    f, df = problem.predict_jacobian([problem.parameters(x)])[0]
    gradient, information = derivatives(problem, x, f, df)[:2]
    handed = ScoringResult(x, objective_from(problem, x, f), 3 * information, gradient, 1, True, 1)
    solves = problem.predict_jacobian.solves
    [(done, observed)] = scoring_with_information([problem], [handed])
    assert problem.predict_jacobian.solves - solves >= 3  # the check, the refit, the refit's covariance run
    assert done.converged
    f, df = problem.predict_jacobian([problem.parameters(done.x)])[0]
    g, h = derivatives(problem, done.x, f, df)[:2]
    assert 0.5 * g @ np.linalg.solve(h, g) < FINISHED_DECREMENT
    se = _standard_errors(hessian)
    assert np.all(np.abs(done.x - full.x) < 0.005 * se)
    np.testing.assert_allclose(_standard_errors(observed), se, rtol=1e-3)
