"""Profiles on exact sensitivities: all grid points fitted together (lockstep scoring from tangent
starts, a looser stop) give the same Δ(−2LL) as full restricted fits; lockstep = one at a time."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.design.insilico import Experiment, lab_rows, write_lab_dataset
from calibration.estimate.lab_fit import fit_lab
from calibration.estimate.scoring import fisher_scoring, fisher_scoring_many
from calibration.uncertainty import profile as profiles

TRUTH = {"ps": 0.5, "vmax": 2.0, "km": 10.0, "kon": 0.05, "koff": 0.02}


@pytest.fixture(scope="module")
def pooled(tmp_path_factory):
    """A pooled two-chip fit of vmax and km, its problem and optimum."""
    rng = np.random.default_rng(7)
    rows = []
    for chip, dose_um in (("low", 5.0), ("high", 100.0)):
        experiment = Experiment(dose_um, (0.5, 2, 6, 12, 24, 48), observables=("drug_medium", "metabolite_medium"))
        rows += lab_rows(chip, experiment, TRUTH, 0.1, rng)
    problems: dict = {}
    record = fit_lab(
        write_lab_dataset(rows, tmp_path_factory.mktemp("tangent") / "lab.csv"),
        method="pooled",
        estimate=["vmax", "km"],
        fix={"ps": 0.5, "kon": 0.05, "koff": 0.02},
        problems=problems,
    )
    problem, _ = problems["pooled"]
    return problem, record, profiles.optimum(problem, record)


def test_the_batched_profile_matches_full_restricted_fits(pooled):
    problem, record, x_hat = pooled
    grid = record.theta["km"].estimate * np.exp(np.array([-0.4, -0.2, 0.2, 0.4]))
    fast = profiles.profile_grid(problem, x_hat, "km", grid)
    # the reference: every point a full restricted fit (stop at 1e-6), started with only km moved (run
    # in lockstep too, which is the same as one at a time: the next test)
    i = problem.names.index("km")
    starts = [np.where(np.arange(x_hat.size) == i, np.log(value), x_hat) for value in grid]
    held = np.arange(x_hat.size) == i
    full = fisher_scoring_many(problem, starts, held=held, decrement_tol=1e-6)
    f_hat = profiles._Exact(problem).objective(x_hat)
    reference = np.array([r.value for r in full]) - f_hat
    assert all(r.converged for r in full)
    assert np.all(np.isfinite(fast.delta)) and fast.delta.max() > 3.84  # the grid reaches past the 95 % threshold
    np.testing.assert_allclose(fast.delta, reference, atol=2e-3)
    np.testing.assert_allclose(fast.values, grid)


def test_lockstep_scoring_equals_one_run_at_a_time(pooled):
    problem, _, x_hat = pooled
    starts = [x_hat + shift for shift in ([0.4, -0.3, 0.1, 0.0], [-0.3, 0.4, 0.0, 0.2])]
    together = fisher_scoring_many(problem, starts)
    for start, batched in zip(starts, together):
        alone = fisher_scoring(problem, start)
        assert batched.converged and alone.converged
        assert batched.iterations == alone.iterations
        np.testing.assert_allclose(batched.x, alone.x, rtol=0, atol=1e-8)
        assert batched.value == pytest.approx(alone.value, abs=1e-8)


def test_the_lockstep_profile_finds_the_walk_s_interval(pooled):
    """``profile_lockstep`` (the panel's: planned points, each round fitted together) gives the interval of
    the point-by-point walk ``profile_parameter``; progress only rises, its total only falls."""
    problem, _, x_hat = pooled
    seen: list[tuple[int, int]] = []
    fast = profiles.profile_lockstep(problem, x_hat, "km", progress=lambda done, total: seen.append((done, total)))
    walked = profiles.profile_parameter(problem, x_hat, "km")
    assert fast.lower is not None and fast.upper is not None and not fast.notes
    assert fast.lower == pytest.approx(walked.lower, rel=5e-3) and fast.upper == pytest.approx(walked.upper, rel=5e-3)
    assert fast.delta.max() > profiles.CHI2_95 and np.all(np.diff(fast.values) > 0)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert all(t2 <= t1 for (_, t1), (_, t2) in zip(seen, seen[1:]))
    assert seen[-1] == (len(fast.values) - 1, len(fast.values) - 1)


def test_the_lockstep_profile_is_asked_before_every_scoring_round_and_stops(pooled):
    problem, _, x_hat = pooled
    asked: list[int] = []
    solves = problem.predict_jacobian.solves
    with pytest.raises(profiles.ProfileCancelled):
        profiles.profile_lockstep(problem, x_hat, "km", should_stop=lambda: asked.append(1) or len(asked) > 3)
    assert len(asked) == 4
    # the optimum's run, then one sensitivity run per scoring round asked about (the probes are plain runs)
    assert problem.predict_jacobian.solves - solves <= 1 + 3
