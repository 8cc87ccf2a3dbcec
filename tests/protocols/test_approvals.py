"""Approvals: outside the bounds the chips are parked and people told; a scientist's decision continues the run."""

from __future__ import annotations

from sqlalchemy import select
from typer.testing import CliRunner

from store.repositories import fits, proposals
from store.repositories.fits import NewFit
from store.repositories.proposals import NewProposal
from store.schema import Alarm, Approval, AuditEntry, DoseEvent, Proposal, ProtocolRun
from tests.protocols.runner_helpers import Background, protocol_text, sim_runner, wait_until
from tests.protocols.test_notify import _servers
from ui.cli.app import app as cli
from ui.panel.auth import add_user, sign_in
from ui.panel.decisions import decide

PASSWORD = "correct horse battery staple"
STEPS = """
[notify]
webhook = "http://127.0.0.1:{port}/chiptwin"
on = ["approval"]

[[steps]]
kind = "calibrate"
model = "liver_chip"
parameters = ["vmax"]

[[steps]]
kind = "propose"
doses = ["80 uM"]
schedules = [["0.1 h"]]

[[steps]]
kind = "approve"
policy = "auto_within_bounds"
max_dose = "50 uM"
max_sampled_volume_per_chip = "200 uL"
timeout = "12 h"

[[steps]]
kind = "execute"
"""


def _rows(runner, table):  # noqa: ANN001, ANN202
    with runner.ctx.recorder.engine.connect() as c:
        return c.execute(select(table)).all()


def _run_state(runner) -> str:  # noqa: ANN001
    return next(r.state for r in _rows(runner, ProtocolRun) if r.id == runner.run_id)


def _decided_by_a_scientist(tmp_path, action: str, via_cli: bool = False):  # noqa: ANN001, ANN202
    """Run calibrate, propose (both found in the store), approve → execute on an 80 uM proposal (bounds: 50 uM); ``action`` it from the panel as a scientist."""
    with _servers() as (_smtp, hook):
        text = protocol_text(STEPS.replace("{port}", str(hook.server_address[1])))
        with sim_runner(tmp_path, text, rate=3600.0) as (runner, _sim):
            engine = runner.ctx.recorder.engine
            design = {
                "chip1": {
                    "chip": "chip1",
                    "dose_um": 80.0,
                    "schedule": "s0",
                    "sample_times_h": [],
                    "sample_volume_ml": 0.02,
                    "utility": 1.0,
                    "method": "test",
                }
            }
            with engine.begin() as c:  # the fit and proposal of steps 0 and 1, found again by their step index
                fits.add(
                    c,
                    NewFit(
                        model="liver_chip",
                        model_version="test",
                        method="individual",
                        record_json="{}",
                        minus2ll=None,
                        aic=None,
                        bic=None,
                        converged=True,
                        wall_time_s=0.0,
                        created_utc_s=0.0,
                        run_id=runner.run_id,
                        step_index=0,
                        chips=("chip1",),
                    ),
                )
                pid = proposals.add(
                    c,
                    NewProposal(
                        run_id=runner.run_id,
                        fit_id=None,
                        step_index=1,
                        design=design,
                        predicted={},
                        expected_information_gain=1.0,
                        created_utc_s=0.0,
                    ),
                )
            safe_calls: list[int] = []
            original = runner.ctx.devices.safe_state
            runner.ctx.devices.safe_state = lambda: (safe_calls.append(1), original())[1]
            add_user(engine, "sam", "scientist", PASSWORD)
            background = Background(runner)
            try:
                assert wait_until(lambda: _run_state(runner) == "parked", 20.0), "the run never parked"
                assert safe_calls, "parked without putting the instruments in their safe state"
                assert not _rows(runner, DoseEvent)  # nothing dosed while it waits
                assert wait_until(lambda: hook.posts, 10.0), "no waiting-for-approval notification"
                post = hook.posts[0]
                assert post["event"] == "approval" and post["proposal_id"] == pid and post["run_id"] == runner.run_id
                alarms = [a for a in _rows(runner, Alarm) if a.source == "approval"]
                assert alarms and "waiting for approval" in alarms[0].message and "80 uM" in alarms[0].message
                if via_cli:  # `chiptwin proposals approve|reject`, headless: the same signed decision
                    url = engine.url.render_as_string(hide_password=False)
                    args = [action, str(pid), "--reason", "checked the tox data", "--user", "sam"]
                    result = CliRunner().invoke(
                        cli, ["proposals", *args, "--password-stdin", "--db", url], input=PASSWORD + "\n"
                    )
                    assert result.exit_code == 0, result.output
                else:
                    decide(engine, sign_in(engine, "sam", PASSWORD), pid, action, "checked the tox data", PASSWORD)
                assert background.result(30.0) == "done"
            finally:
                runner.control.stop("aborted", "test over")
                background.result(10.0)
            return runner, pid


def test_a_scientist_approves_from_the_panel_and_the_dose_is_given(tmp_path) -> None:
    runner, pid = _decided_by_a_scientist(tmp_path, "approve")
    approvals = [a for a in _rows(runner, Approval) if a.proposal_id == pid]
    signed = [a for a in approvals if a.signature]
    assert len(approvals) == 1, "the runner must not write a second, unsigned Approval for a signed decision"
    assert len(signed) == 1 and signed[0].decided_by == "sam" and signed[0].decision == "approved"
    assert signed[0].reason == "checked the tox data" and signed[0].signature.startswith("sha256:")
    assert all(a.decided_by == "sam" and a.decision == "approved" for a in approvals)
    audit = [(e.actor, e.action) for e in _rows(runner, AuditEntry)]
    assert ("sam", "proposal.approve") in audit and ("sam", "request.approve") in audit
    assert next(p.status for p in _rows(runner, Proposal) if p.id == pid) == "executed"
    doses = _rows(runner, DoseEvent)
    assert len(doses) == 1 and doses[0].volume_ml > 0


def test_a_rejection_gives_no_dose_and_the_run_goes_on(tmp_path) -> None:
    runner, pid = _decided_by_a_scientist(tmp_path, "reject")
    assert next(p.status for p in _rows(runner, Proposal) if p.id == pid) == "rejected"
    assert {a.decision for a in _rows(runner, Approval) if a.proposal_id == pid} == {"rejected"}
    assert not _rows(runner, DoseEvent)
    assert ("sam", "proposal.reject") in [(e.actor, e.action) for e in _rows(runner, AuditEntry)]


def test_a_parked_run_goes_on_when_a_scientist_approves_from_the_command_line(tmp_path) -> None:
    runner, pid = _decided_by_a_scientist(tmp_path, "approve", via_cli=True)
    (approval,) = [a for a in _rows(runner, Approval) if a.proposal_id == pid]
    assert (approval.decided_by, approval.decision) == ("sam", "approved") and approval.signature.startswith("sha256:")
    assert next(p.status for p in _rows(runner, Proposal) if p.id == pid) == "executed"
    assert len(_rows(runner, DoseEvent)) == 1
