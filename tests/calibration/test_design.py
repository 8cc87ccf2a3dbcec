"""Experiment design: information-based ranking, posterior averaging, ask/tell, clear refusals."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.design.posterior import Posterior
from calibration.design.rank import Designer
from calibration.design.space import DesignSpace, space_from_dict
from calibration.errors import CalibrationError
from calibration.io.record import Estimate, FitRecord

NAMES = ("vmax", "km", "kon", "koff")
TRUTH = {"vmax": 2.0, "km": 10.0, "kon": 0.05, "koff": 0.02}
ERRORS = {"drug_medium": {"prop_cv": 0.15}}


def posterior(sd: float | list[float]) -> Posterior:
    sd = np.broadcast_to(np.asarray(sd, dtype=float), (4,))
    return Posterior(
        "liver_chip",
        NAMES,
        np.log([TRUTH[n] for n in NAMES]),
        np.diag(sd**2),
        {"ps": 0.5},
        {"drug_medium.prop_cv": 0.15},
    )


def space(**changes) -> DesignSpace:
    settings = dict(
        dose_levels_um=(2.0, 50.0),
        schedules={"instant": (0.01, 0.02), "spread": (1, 6, 24, 48)},
        chips=("chip-1", "chip-2", "chip-3"),
        errors=ERRORS,
    )
    settings.update(changes)
    return DesignSpace(**settings)


def by_design(proposals):
    return {(p.candidate.dose_um, p.candidate.schedule): p for p in proposals}


def test_sampling_where_the_sensitivities_are_large_is_worth_more():
    ranked = by_design(Designer(space(), posterior(0.5), draws=4).rank())
    for dose in (2.0, 50.0):
        assert ranked[(dose, "spread")].utility > 10 * ranked[(dose, "instant")].utility
    assert ranked[(2.0, "instant")].utility >= 0


def test_posterior_average_differs_from_the_point_estimate_when_the_posterior_is_wide():
    def relative_gap(sd):
        averaged = by_design(Designer(space(), posterior(sd), draws=8, seed=3).rank())[(50.0, "spread")].utility
        point = by_design(Designer(space(), posterior(sd), draws=1).rank())[(50.0, "spread")].utility
        return abs(averaged - point) / point

    assert relative_gap(1.5) > 0.05
    assert relative_gap(1.5) > 3 * relative_gap(0.02)


def test_expected_sd_after_the_experiment_is_at_most_the_current_sd():
    for proposal in Designer(space(), posterior([0.3, 0.8, 0.5, 1.0]), draws=4).rank():
        for value in proposal.parameters.values():
            assert value["expected_sd"] <= value["sd"] * (1 + 1e-9)
            assert value["expected_rse_percent"] <= value["rse_percent"] * (1 + 1e-9)
        band = proposal.predicted["drug_medium"]
        assert len(band["mean"]) == len(proposal.candidate.sample_times_h)
        assert all(lo <= hi for lo, hi in zip(band["p05"], band["p95"]))


def test_no_feasible_candidate_says_which_constraint_to_relax():
    with pytest.raises(CalibrationError, match="max_concentration_um = 1.*raise the maximum"):
        space(max_concentration_um=1.0).candidates()
    with pytest.raises(CalibrationError, match="max_volume_removed_ml = 0.03 excludes every schedule"):
        space(max_volume_removed_ml=0.03, sample_volumes_ml=(0.02,)).candidates()
    with pytest.raises(CalibrationError, match="no chips"):
        space(chips=()).candidates()
    with pytest.raises(CalibrationError, match="unknown section"):
        space_from_dict({"doses": {"levels_um": [1]}, "dosez": {}})


def test_volume_already_removed_counts_per_chip():
    tight = space(max_volume_removed_ml=0.08, removed_ml={"chip-1": 0.05})
    chips = {c.chip for c in tight.candidates() if c.schedule == "spread"}
    assert chips == {"chip-2", "chip-3"}


def test_ask_tell_round_trip():
    designer = Designer(space(), posterior(0.5), draws=2)
    proposals = designer.ask(2)
    assert len({p.candidate.chip for p in proposals}) == 2
    assert proposals[0].utility >= proposals[1].utility - 1e-9 or proposals[1].utility > 0
    narrower = posterior(0.1)
    designer.tell(narrower)
    assert designer.posterior is narrower
    assert set(designer.space.chips) == {"chip-3"}
    assert len(designer.history) == 1 and designer.history[0][0] == proposals
    after = designer.ask(1)[0]
    assert after.parameters["vmax"]["rse_percent"] == pytest.approx(10.0)
    with pytest.raises(CalibrationError, match="free chip"):
        designer.ask(2)


def test_posterior_from_a_fit_record_rebuilds_the_log_covariance():
    theta = {
        n: Estimate(**{"estimate": TRUTH[n], "se": None, "ci95": None, "rse_percent": 10.0 * (k + 1)})
        for k, n in enumerate(NAMES)
    }
    matrix = np.eye(5)
    matrix[0, 1] = matrix[1, 0] = 0.9
    record = FitRecord(
        "liver_chip",
        "1",
        "pooled",
        True,
        1.0,
        12,
        3,
        5,
        theta,
        {"drug_medium.prop_cv": 0.15},
        correlation={"names": [*NAMES, "drug_medium.prop_cv"], "matrix": matrix.tolist()},
        data_selection={"fixed": {"ps": 0.5}},
    )
    post = Posterior.from_record(record)
    assert post.covariance_log[0, 1] == pytest.approx(0.9 * 0.1 * 0.2)
    assert post.fixed == {"ps": 0.5} and post.residual("drug_medium") == (0.0, 0.15)
    record.theta["km"].rse_percent = None
    with pytest.raises(CalibrationError, match="no standard error for km"):
        Posterior.from_record(record)


def test_discrimination_favours_designs_where_the_rivals_disagree():
    main = posterior(0.05)
    no_pdms = Posterior(
        "liver_chip", NAMES, main.mean_log + np.log([1, 1, 0.05, 1]), main.covariance_log, main.fixed, main.sigma
    )
    ranked = by_design(Designer(space(), main, draws=2, rival=no_pdms).rank())
    assert ranked[(50.0, "spread")].utility > 5 * ranked[(50.0, "instant")].utility
    same = by_design(Designer(space(), main, draws=2, rival=main).rank())
    assert same[(50.0, "spread")].utility < 0.1 * ranked[(50.0, "spread")].utility
    assert same[(50.0, "spread")].utility_kind == "discrimination"
