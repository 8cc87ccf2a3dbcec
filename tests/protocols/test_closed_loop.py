"""One real round of the closed loop on the simulated rig: dose and sample, calibrate (each chip
fitted to its own assays), propose (Bayesian D-optimal), approve by policy, execute — and what each
step leaves in the store for the people reviewing it."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from store.schema import Approval, DoseEvent, Fit, Proposal
from tests.protocols.runner_helpers import (
    Background,
    dose_sample_calibrate,
    propose_approve_execute,
    protocol_text,
    sim_runner,
    wait_until,
)

STEPS = dose_sample_calibrate(["0.5 h", "2 h", "6 h"], ["vmax", "km"]) + propose_approve_execute(
    ["5 uM", "50 uM"], [["0.5 h", "2 h", "8 h"], ["0.25 h", "1 h", "4 h", "12 h"]]
)


@pytest.fixture(scope="module")
def round_one(tmp_path_factory):
    # the demo's stepped clock: the round's 20-odd hours of waiting pass at 36000x, landing on each deadline
    with sim_runner(tmp_path_factory.mktemp("loop"), protocol_text(STEPS), rate=36000.0, stepped=True) as (
        runner,
        _sim,
    ):
        background = Background(runner)
        wait_until(lambda: background.state is not None, 150.0)
        state = background.result(10.0) or runner.control.state
        with runner.ctx.recorder.engine.connect() as c:
            tables = {t.__name__: c.execute(select(t)).all() for t in (Fit, Proposal, Approval, DoseEvent)}
    return state, tables


def test_the_round_completes_with_a_policy_approval_and_the_proposed_doses(round_one):
    state, tables = round_one
    assert state == "done"
    (proposal,) = tables["Proposal"]
    assert proposal.status == "executed"
    (approval,) = tables["Approval"]
    assert (approval.decision, approval.decided_by) == ("approved", "policy:auto_within_bounds")
    design = json.loads(proposal.design_json)["chips"]
    assert set(design) == {"chip1", "chip2"} and all(d["dose_um"] in (5.0, 50.0) for d in design.values())
    doses = tables["DoseEvent"]
    assert len(doses) == 4  # the first dose and the proposed one, on each chip


def test_each_chip_has_its_own_fit_of_its_own_data(round_one):
    (fit,) = round_one[1]["Fit"]
    per_chip = json.loads(fit.record_json)["chips"]
    assert set(per_chip) == {"chip1", "chip2"}
    for record in per_chip.values():
        assert set(record["theta"]) == {"vmax", "km"}
        assert record["n_observations"] >= 6  # three samples × drug and metabolite
        assert set(record["sigma"]) == {"drug_medium.prop_cv", "metabolite_medium.prop_cv"}


def test_the_proposal_carries_its_predicted_outcome_what_it_teaches_and_its_checks(round_one):
    (proposal,) = round_one[1]["Proposal"]
    predicted = json.loads(proposal.predicted_json)
    design = json.loads(proposal.design_json)["chips"]
    for chip, entry in predicted["chips"].items():
        for observable in ("drug_medium", "metabolite_medium"):
            band = entry["observables"][observable]
            assert band["time_h"] == design[chip]["sample_times_h"]
            assert all(lo <= m <= hi for lo, m, hi in zip(band["p05"], band["mean"], band["p95"]))
        for name, p in entry["parameters"].items():  # an experiment can only narrow the posterior
            assert p["expected_rse_percent"] <= p["rse_percent"] + 1e-9, (chip, name)
    checks = {(c["chip"], c["check"]): c for c in predicted["checks"]}
    assert {check for _, check in checks} == {"dose concentration", "medium left after sampling"}
    assert all(c["ok"] for c in checks.values())
