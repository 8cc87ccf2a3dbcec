"""Decisions as a record (#12 item 5): the Proposals page's history and `chiptwin proposals` / `chiptwin runs`.

The panel's ``lab`` store (a running run, a pending proposal, three users) gets three more proposals of
the same run: one approved by policy and executed with assays (its outcome against the prediction),
one rejected with a scientist's signature, one expired.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from sqlalchemy import insert, select
from typer.testing import CliRunner

from store import make_engine
from store.audit import seal_row, verify_audit
from store.repositories import proposals
from store.repositories.proposals import NewProposal
from store.schema import Approval, AssayResult, AuditEntry, PanelRequest, Proposal, Sample, Step
from store.states import ProposalStatus
from tests.ui.test_panel_support import (  # noqa: F401 (lab is a fixture)
    PASSWORDS,
    T0,
    Lab,
    app_signed_in,
    lab,
    on_page,
    texts,
)
from ui.cli.app import app as cli
from ui.panel import history
from ui.panel.auth import sign_in
from ui.panel.decisions import decide

runner = CliRunner()


@dataclass
class Decided:
    lab: Lab
    executed: int
    rejected: int
    expired: int


def _design(dose_um: float, times_h: list[float]) -> dict:
    return {
        "liver-1": {
            "chip": "liver-1",
            "dose_um": dose_um,
            "schedule": "s0",
            "sample_times_h": times_h,
            "sample_volume_ml": 0.02,
            "utility": 1.0,
            "method": "test",
        }
    }


PREDICTED = {
    "chips": {
        "liver-1": {
            "observables": {
                "drug_medium": {
                    "time_h": [0.0, 1.0, 2.0],
                    "mean": [20, 15, 10],
                    "p05": [18, 12, 8],
                    "p95": [22, 18, 12],
                }
            }
        }
    }
}


@pytest.fixture
def decided(lab: Lab) -> Decided:
    engine = make_engine(lab.url)
    with engine.begin() as c:
        executed = proposals.add(
            c, NewProposal(lab.run_id, lab.fit_ids[-1], 1, _design(20.0, [0.5, 2.0]), PREDICTED, 0.3, T0 + 7200)
        )
        approval = proposals.add_approval(
            c, executed, "policy:auto_within_bounds", ProposalStatus.APPROVED, "dose 20 uM <= 50 uM", T0 + 7300
        )
        seal_row(c, "approval", approval, "policy:auto_within_bounds", "approval.approved")
        proposals.set_status(c, executed, ProposalStatus.EXECUTED)
        # the execute step (index 3) sampled at 0.5 h and 2 h: 13 uM is outside the band 15–20, 10.5 inside 8–12
        for k, (t_h, value) in enumerate(((0.5, 13.0), (2.0, 10.5))):
            sample_id = c.execute(
                insert(Sample).values(
                    label=f"run{lab.run_id}/step3/liver-1/{k}",
                    run_id=lab.run_id,
                    chip_id=lab.chip_ids[0],
                    t_utc_s=T0 + 8000 + 3600 * t_h,
                    volume_ml=0.02,
                )
            ).inserted_primary_key[0]
            c.execute(
                insert(AssayResult).values(
                    sample_id=sample_id, analyte="drug_medium", value=value, unit="uM", imported_utc_s=T0 + 20000
                )
            )
        rejected = proposals.add(c, NewProposal(lab.run_id, None, 6, _design(50.0, [1.0]), {}, 0.2, T0 + 30000))
        expired = proposals.add(c, NewProposal(lab.run_id, None, 11, _design(5.0, [1.0]), {}, 0.1, T0 + 40000))
        proposals.set_status(c, expired, ProposalStatus.EXPIRED)
        for index, kind in enumerate(("calibrate", "propose", "approve")):
            c.execute(
                insert(Step).values(
                    run_id=lab.run_id,
                    index=index,
                    kind=kind,
                    state="done" if index < 2 else "running",
                    started_utc_s=T0 + 3600 * index,
                    ended_utc_s=T0 + 3600 * index + 60 if index < 2 else None,
                )
            )
    sam = sign_in(engine, "sam", PASSWORDS["sam"])
    decide(engine, sam, rejected, "reject", "50 uM is too close to the tox limit", PASSWORDS["sam"])
    engine.dispose()
    return Decided(lab, executed, rejected, expired)


def _rows(url: str, query):
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(query).all()
    finally:
        engine.dispose()


# ------------------------------------------------------------------ the record itself


def test_each_proposal_says_who_decided_why_and_whether_it_was_signed(decided):
    records = {r.proposal_id: r for r in history.decision_records(make_engine(decided.lab.url))}
    assert list(records) == sorted(records, reverse=True)  # newest first
    assert records[decided.lab.proposal_id].status == "pending" and records[decided.lab.proposal_id].who == "—"
    executed = records[decided.executed]
    assert (executed.status, executed.who, executed.signed) == ("executed", "policy auto_within_bounds", False)
    rejected = records[decided.rejected]
    assert (rejected.status, rejected.who, rejected.signed) == ("rejected", "sam (signed)", True)
    assert rejected.reason == "50 uM is too close to the tox limit"
    assert rejected.decided_utc_s is not None and rejected.decided_utc_s > 1.7e9  # wall-clock, not the run's clock
    assert records[decided.expired].who == "nobody (timed out)"


def test_an_executed_proposals_assays_are_set_against_its_predicted_band(decided):
    observed = history.outcome(make_engine(decided.lab.url), decided.executed)
    assert [(o.time_h, o.observed, o.within_band) for o in observed] == [(0.5, 13.0, False), (2.0, 10.5, True)]
    assert observed[0].predicted_mean == pytest.approx(17.5) and observed[0].predicted_p05 == pytest.approx(15.0)
    assert history.outcome_summary(observed) == "1 of 2 assays within the predicted 90 % band"
    assert history.outcome(make_engine(decided.lab.url), decided.rejected) == []  # never executed


# ------------------------------------------------------------------ the panel's history


def test_the_history_shows_pending_policy_signed_rejected_and_executed_proposals(decided):
    app = on_page(app_signed_in("tina"), "proposals")  # a technician may read the record
    assert "History" in [h.value for h in app.header]
    table = app.dataframe[-2].value if len(app.expander) else app.dataframe[-1].value
    by_id = table.set_index("proposal")
    assert by_id.loc[decided.lab.proposal_id, "status"] == "pending"
    assert by_id.loc[decided.executed, "decided by"] == "policy auto_within_bounds"
    assert by_id.loc[decided.executed, "outcome"] == "1 of 2 assays within the predicted 90 % band"
    assert by_id.loc[decided.rejected, "decided by"] == "sam (signed)"
    assert by_id.loc[decided.rejected, "reason"] == "50 uM is too close to the tox limit"
    assert bool(by_id.loc[decided.rejected, "signed"]) and not bool(by_id.loc[decided.executed, "signed"])
    assert by_id.loc[decided.expired, "decided by"] == "nobody (timed out)"
    assert [e.label for e in app.expander if "outcome vs prediction" in e.label] == [
        f"Proposal {decided.executed}: outcome vs prediction — 1 of 2 assays within the predicted 90 % band"
    ]
    outcome = app.dataframe[-1].value
    assert list(outcome["within"]) == [False, True] and list(outcome["observed (µM)"]) == [13.0, 10.5]


# ------------------------------------------------------------------ the command line


def _cli(*args: str, stdin: str | None = None):
    return runner.invoke(cli, list(args), input=stdin, env={"COLUMNS": "200"})


def test_proposals_list_as_json_and_as_a_table(decided):
    url = decided.lab.url
    result = _cli("proposals", "list", "--run", str(decided.lab.run_id), "--json", "--db", url)
    assert result.exit_code == 0, result.output
    listed = {p["proposal_id"]: p for p in json.loads(result.stdout)}
    assert set(listed) == {decided.lab.proposal_id, decided.executed, decided.rejected, decided.expired}
    assert listed[decided.rejected]["decided_by"] == "sam" and listed[decided.rejected]["signed"] is True
    assert listed[decided.executed]["outcome"].startswith("1 of 2 assays")
    assert json.loads(_cli("proposals", "list", "--run", "999", "--json", "--db", url).stdout) == []
    table = _cli("proposals", "list", "--db", url)
    assert table.exit_code == 0 and "policy auto_within_bounds" in table.stdout and "sam (signed)" in table.stdout


def test_approve_from_the_command_line_needs_the_signers_own_password(decided):
    url, pid = decided.lab.url, decided.lab.proposal_id
    args = ("proposals", "approve", str(pid), "--reason", "most informative", "--password-stdin", "--db", url)
    wrong = _cli(*args, "--user", "sam", stdin="not-sams-password\n")
    assert wrong.exit_code == 2 and "signature does not match" in wrong.stderr and "Traceback" not in wrong.output
    technician = _cli(*args, "--user", "tina", stdin=PASSWORDS["tina"] + "\n")
    assert technician.exit_code == 2 and "your role (technician) may not approve" in technician.stderr
    blank = _cli(
        "proposals",
        "approve",
        str(pid),
        "--reason",
        " ",
        "--user",
        "sam",
        "--password-stdin",
        "--db",
        url,
        stdin=PASSWORDS["sam"] + "\n",
    )
    assert blank.exit_code == 2 and "give a reason" in blank.stderr
    assert _rows(url, select(Proposal.status).where(Proposal.id == pid))[0].status == "pending"
    assert not _rows(url, select(Approval).where(Approval.proposal_id == pid))

    done = _cli(*args, "--user", "sam", stdin=PASSWORDS["sam"] + "\n")
    assert done.exit_code == 0, done.output
    assert f"proposal {pid} approved by sam" in done.stdout
    (approval,) = _rows(url, select(Approval).where(Approval.proposal_id == pid))
    assert (approval.decided_by, approval.decision, approval.reason) == ("sam", "approved", "most informative")
    assert approval.signature.startswith("sha256:") and PASSWORDS["sam"] not in approval.signature
    (request,) = _rows(url, select(PanelRequest).where(PanelRequest.kind == "approve"))
    assert request.run_id == decided.lab.run_id and json.loads(request.payload_json)["proposal_id"] == pid
    sealed = _rows(url, select(AuditEntry).where(AuditEntry.action == "proposal.approve"))
    assert [(e.actor, e.entity, e.entity_id) for e in sealed] == [("sam", "approval", str(approval.id))]
    refused = [e.actor for e in _rows(url, select(AuditEntry).where(AuditEntry.action == "cli.sign_in_refused"))]
    assert refused == ["sam"]  # the wrong signature is on the record too, as the command line's
    assert verify_audit(make_engine(url)).intact

    again = _cli(*args, "--user", "sam", stdin=PASSWORDS["sam"] + "\n")
    assert again.exit_code == 2 and "approved already" in again.stderr


def test_reject_from_the_command_line_and_a_missing_proposal(decided):
    url, pid = decided.lab.url, decided.lab.proposal_id
    # without --password-stdin the signature is asked for, and not echoed
    done = _cli(
        "proposals", "reject", str(pid), "--reason", "no", "--user", "sam", "--db", url, stdin=PASSWORDS["sam"] + "\n"
    )
    assert "Signature: the password of sam" in done.output and PASSWORDS["sam"] not in done.output
    assert done.exit_code == 0 and f"proposal {pid} rejected by sam" in done.stdout
    assert _rows(url, select(Proposal.status).where(Proposal.id == pid))[0].status == "rejected"
    missing = _cli(
        "proposals",
        "reject",
        "9999",
        "--reason",
        "no",
        "--user",
        "sam",
        "--password-stdin",
        "--db",
        url,
        stdin=PASSWORDS["sam"] + "\n",
    )
    assert missing.exit_code == 2 and "there is no proposal 9999" in missing.stderr


def test_runs_list_and_show_with_the_checkpoint_and_a_timeline(decided):
    url, run_id = decided.lab.url, decided.lab.run_id
    listed = json.loads(_cli("runs", "list", "--json", "--db", url).stdout)
    assert [(r["run_id"], r["rig"], r["state"]) for r in listed] == [(run_id, "bench-1", "running")]
    assert "bench-1" in _cli("runs", "list", "--db", url).stdout
    # the fixture's protocol text is not a protocol: the timeline still comes from the steps started
    view = json.loads(_cli("runs", "show", str(run_id), "--json", "--db", url).stdout)
    assert view["state"] == "running" and view["current_step"] == {"index": 0, "kind": None}
    assert [(s["index"], s["kind"], s["state"]) for s in view["timeline"]] == [
        (0, "calibrate", "done"),
        (1, "propose", "done"),
        (2, "approve", "running"),
    ]
    assert view["timeline"][1]["start_h"] == pytest.approx(1.0)
    assert view["proposals_pending"] == [decided.lab.proposal_id]
    shown = _cli("runs", "show", str(run_id), "--db", url)
    assert shown.exit_code == 0 and "run 1: running" in shown.stdout and "approve" in shown.stdout
    assert f"proposal {decided.lab.proposal_id} waits for a decision: chiptwin proposals approve" in shown.stdout
    missing = _cli("runs", "show", "42", "--db", url)
    assert missing.exit_code == 2 and "there is no run 42" in missing.stderr


def test_runs_show_names_the_current_and_next_step_of_the_stored_protocol(lab):
    from protocols.demo.setup import PROTOCOL
    from store.repositories import runs

    engine = make_engine(lab.url)
    with engine.begin() as c:
        run_id, _sha = runs.create(c, lab.rig_id, PROTOCOL.read_text(encoding="utf-8"), 3600.0)
        runs.checkpoint(c, run_id, {"step": 16, "started_utc_s": T0})
    engine.dispose()
    view = json.loads(_cli("runs", "show", str(run_id), "--json", "--db", lab.url).stdout)
    assert view["steps_total"] == 19 and view["state"] == "created"
    assert view["current_step"] == {"index": 16, "kind": "approve"}  # the last round's, signed by a person
    assert view["next_step"] == {"index": 17, "kind": "execute"}
    shown = _cli("runs", "show", str(run_id), "--db", lab.url).stdout
    assert "current step: 17/19 approve · next: 18/19 execute" in shown


def test_the_demo_summary_lists_each_decision_oldest_first(decided):
    from protocols.demo.setup import summarise

    summary = summarise(make_engine(decided.lab.url), decided.lab.run_id, {})
    decisions = {d["proposal_id"]: d for d in summary["decisions"]}
    assert list(decisions) == sorted(decisions)
    assert decisions[decided.executed]["decided_by"] == "policy:auto_within_bounds"
    assert decisions[decided.rejected] == {
        "proposal_id": decided.rejected,
        "status": "rejected",
        "decided_by": "sam",
        "signed": True,
        "reason": "50 uM is too close to the tox limit",
    }
    assert decisions[decided.expired]["decided_by"] is None
