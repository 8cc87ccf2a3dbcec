"""The SiLA 2 server as a lab scheduler meets it: the server and a generic ``sila2`` client, each its own process.

The server (``python -m ui.endpoints.sila``) serves a real store on a free loopback port; the client
(tests/ui/sila_client.py) knows nothing of ChipTwin. The test itself plays the lab supervisor where a
queued run has to start: it claims the entry and runs it on a simulated rig.
"""

from __future__ import annotations

import json
import queue as queues
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from store import make_engine
from store.audit import verify_audit
from store.migrate import upgrade
from store.repositories import proposals, queue, runs
from store.repositories.proposals import NewProposal
from store.schema import AuditEntry, Rig
from store.states import ProposalStatus, QueueState
from tests.net import free_loopback_port
from tests.protocols.runner_helpers import RIG, Background, protocol_text, sim_runner
from ui.panel.auth import add_user

REPO = Path(__file__).resolve().parents[2]
CLIENT = Path(__file__).with_name("sila_client.py")
PASSWORDS = {"sci": "sci-password-1", "tech": "tech-password-1"}
TWO_WAITS = protocol_text('[[steps]]\nkind = "wait"\nduration = "1 h"\n\n[[steps]]\nkind = "wait"\nduration = "1 h"\n')
REPLY_TIMEOUT_S = 120.0  # generous: two cores shared with other work (load 20 seen)


def _prepared_store(url: str) -> None:
    """Schema, the rig a supervisor would register, a scientist and a technician."""
    engine = make_engine(url, create=True)
    upgrade(engine)
    with engine.begin() as c:
        c.execute(Rig.__table__.insert().values(name="liver4", config_toml=RIG.read_text(), created_utc_s=time.time()))
    add_user(engine, "sci", "scientist", PASSWORDS["sci"])
    add_user(engine, "tech", "technician", PASSWORDS["tech"])
    engine.dispose()


class Client:
    """The client process, one JSON line per request and reply (each read bounded)."""

    def __init__(self, port: int, ca: Path | None = None) -> None:
        trust = [] if ca is None else [str(ca)]
        self.process = subprocess.Popen(
            [sys.executable, str(CLIENT), "127.0.0.1", str(port), *trust],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        self.lines: queues.Queue[str] = queues.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def send(self, *request: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()

    def reply(self, timeout_s: float = REPLY_TIMEOUT_S) -> dict:
        try:
            return json.loads(self.lines.get(timeout=timeout_s))
        except queues.Empty:
            raise AssertionError(f"the SiLA client gave no reply in {timeout_s} s") from None

    def call(self, feature: str, command: str, *args: object) -> dict:
        self.send("call", feature, command, *args)
        return self.reply()

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.reader.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def sila(request, tmp_path):
    """(client, store url): a server on the test's store and a client connected to it."""
    url = request.getfixturevalue(getattr(request, "param", "sqlite_url"))
    _prepared_store(url)
    port = free_loopback_port()
    log = tmp_path / "sila_server.log"
    with log.open("w") as log_file:  # a file, not a pipe: a server's log can never block it
        server = subprocess.Popen(
            [sys.executable, "-m", "ui.endpoints.sila", "--db", url, "--address", f"127.0.0.1:{port}", "--insecure"],
            cwd=REPO,
            stderr=log_file,
        )
    client = None
    try:
        client = Client(port)  # started while the server starts; it retries until the server answers
        ready = client.reply()
        assert server.poll() is None, f"the server ended: {log.read_text()}"
        assert any("org.chiptwin/organchip/RunQueue/v1" in f for f in ready["ready"]), ready
        yield client, url
    finally:
        if client is not None:
            client.close()
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        assert "Traceback" not in log.read_text(), log.read_text()


def _enqueue(client: Client, rig: str, text: str, user: str = "sci", not_before: str = "") -> dict:
    return client.call("RunQueue", "EnqueueRun", rig, "two_waits.toml", text, not_before, user, PASSWORDS[user])


def test_a_client_enqueues_a_run_observes_it_to_the_end_and_reads_channels(sila, tmp_path):
    client, url = sila
    queue_id = _enqueue(client, "liver4", TWO_WAITS)["ok"][0]
    engine = make_engine(url)
    try:
        entry = queue.get(engine, queue_id)
        assert (entry.state, entry.queued_by, entry.rig_name) == (QueueState.QUEUED, "sci", "liver4")

        client.send("observe", queue_id, REPLY_TIMEOUT_S)
        assert "observing" in client.reply()
        # the supervisor's job: claim the entry, start its run on the (simulated) rig, record the run
        with engine.begin() as c:
            assert queue.claim(c, queue_id, by="test-supervisor")
        with sim_runner(tmp_path, queue.protocol_text(engine, queue_id)) as (runner, _sim):
            with engine.begin() as c:
                assert queue.mark_started(c, queue_id, run_id=runner.ctx.run_id, now_utc_s=time.time())
            assert Background(runner).result(timeout_s=REPLY_TIMEOUT_S) == "done"
        observed = client.reply()
        assert observed["final"] == ["done", runner.ctx.run_id, ""]
        assert observed["progress"] == 1.0
        running = [s for s in observed["statuses"] if s[0] == "running"]
        assert running, observed["statuses"]
        assert {s[4] for s in observed["statuses"]} == {2}  # StepsTotal: the protocol's two steps
        assert any(s[2] in ("0 wait", "1 wait") and s[1] == runner.ctx.run_id for s in running)

        # a started entry is the run's to abort, not the queue's to cancel
        refused = client.call("RunQueue", "CancelQueued", queue_id, "too late", "sci", PASSWORDS["sci"])
        assert refused["error"] == "QueueRefused"
        assert f"queue entry {queue_id} is started (run {runner.ctx.run_id}" in refused["message"]

        # a queued entry is cancelled, and an observer sees it end so
        later = _enqueue(client, "liver4", TWO_WAITS, not_before="2099-01-01T00:00:00+00:00")["ok"][0]
        assert (
            queue.get(engine, later).not_before_utc_s == datetime.fromisoformat("2099-01-01T00:00:00+00:00").timestamp()
        )
        assert client.call("RunQueue", "CancelQueued", later, "wrong day", "sci", PASSWORDS["sci"]) == {"ok": []}
        client.send("observe", later, REPLY_TIMEOUT_S)
        assert "observing" in client.reply()
        assert client.reply()["final"] == ["cancelled", 0, "wrong day"]

        # channels: every one with its unit, the newest reading of one with its unit and time
        listed = client.call("Channels", "ListChannels")["ok"][0]
        assert {row[0] for row in listed} == {"liver4"} and len(listed) > 3
        read = None
        for _rig, _chip, channel, _quantity, unit in listed:
            got = client.call("Channels", "ReadLatest", "liver4", channel)
            if "ok" in got:
                read = (channel, unit, got["ok"])
                break
        assert read is not None, "no channel had a reading after the run"
        channel, unit, (value, read_unit, when, quality) = read
        assert read_unit == unit and isinstance(value, float) and quality >= 0
        assert datetime.fromisoformat(when).utcoffset().total_seconds() == 0
        unknown = client.call("Channels", "ReadLatest", "liver4", "no_such_channel")
        assert unknown["error"] == "UnknownChannel" and channel in unknown["message"]
    finally:
        engine.dispose()


@pytest.mark.parametrize("sila", ["sqlite_url", "postgres_url"], indirect=True)
def test_bad_enqueues_are_refused_with_the_reason_and_nothing_is_queued(sila):
    client, url = sila
    unknown = _enqueue(client, "gut9", TWO_WAITS)
    assert unknown == {
        "error": "QueueRefused",
        "message": "rig 'gut9' is not known to this lab; fix: use one of: liver4",
    }
    invalid = _enqueue(client, "liver4", TWO_WAITS.replace('"chip1"', '"chip9"', 1))
    assert invalid["error"] == "QueueRefused" and "two_waits.toml line" in invalid["message"], invalid
    naive = _enqueue(client, "liver4", TWO_WAITS, not_before="2099-01-01T00:00:00")
    assert naive["error"] == "QueueRefused" and "no UTC offset" in naive["message"]
    technician = _enqueue(client, "liver4", TWO_WAITS, user="tech")
    assert technician == {
        "error": "NotAllowed",
        "message": "your role (technician) may not queue or cancel runs; ask a scientist or an admin",
    }
    wrong = client.call("RunQueue", "EnqueueRun", "liver4", "p.toml", TWO_WAITS, "", "sci", "not-the-password")
    assert wrong["error"] == "NotAllowed" and "user name or password is wrong" in wrong["message"]
    gone = client.call("RunQueue", "CancelQueued", 999, "typo", "sci", PASSWORDS["sci"])
    assert gone["error"] == "UnknownQueueEntry"
    engine = make_engine(url)
    try:
        assert queue.listing(engine) == []
        with engine.connect() as c:
            actions = list(c.execute(select(AuditEntry.action, AuditEntry.actor)).all())
        assert ("sila.sign_in_refused", "sci") in actions and not any(a == "queue.add" for a, _ in actions)
    finally:
        engine.dispose()


@pytest.mark.parametrize("sila", ["sqlite_url", "postgres_url"], indirect=True)
def test_an_approval_needs_the_scientist_role_and_the_right_password(sila):
    client, url = sila
    engine = make_engine(url)
    try:
        with engine.begin() as c:
            rig_id = c.execute(select(Rig.id).where(Rig.name == "liver4")).scalar_one()
            run_id, _sha = runs.create(c, rig_id, TWO_WAITS, 3600.0)
            design = {"chip1": {"dose": "5 mg/L"}}
            proposal_id = proposals.add(c, NewProposal(run_id, None, 1, design, {}, 0.5, time.time()))
        pending = client.call("ProposalDecisions", "ListPending")["ok"][0]
        assert [(p[0], p[1]) for p in pending] == [(proposal_id, run_id)]
        assert json.loads(pending[0][2])["chips"] == design

        by_technician = client.call(
            "ProposalDecisions", "Approve", proposal_id, "looks fine", "tech", PASSWORDS["tech"]
        )
        assert by_technician == {
            "error": "NotAllowed",
            "message": "your role (technician) may not approve; ask a user whose role may",
        }
        wrong_password = client.call("ProposalDecisions", "Approve", proposal_id, "looks fine", "sci", "sci-password-2")
        assert wrong_password["error"] == "NotAllowed"
        no_reason = client.call("ProposalDecisions", "Approve", proposal_id, "  ", "sci", PASSWORDS["sci"])
        assert no_reason == {"error": "DecisionRefused", "message": "give a reason: it is kept with the decision"}
        assert proposals.get(engine, proposal_id).status == ProposalStatus.PENDING

        approved = client.call(
            "ProposalDecisions", "Approve", proposal_id, "dose within range", "sci", PASSWORDS["sci"]
        )
        approval_id = approved["ok"][0]
        (approval,) = proposals.approvals(engine, proposal_id)
        assert (approval.id, approval.decided_by, approval.reason) == (approval_id, "sci", "dose within range")
        assert approval.signature.startswith("sha256:")
        assert proposals.get(engine, proposal_id).status == ProposalStatus.APPROVED
        with engine.connect() as c:
            last = c.execute(select(AuditEntry).where(AuditEntry.action == "proposal.approve")).one()
        assert (last.actor, last.entity, last.entity_id) == ("sci", "approval", str(approval_id))
        assert verify_audit(engine).intact

        again = client.call("ProposalDecisions", "Reject", proposal_id, "changed my mind", "sci", PASSWORDS["sci"])
        assert again == {
            "error": "DecisionRefused",
            "message": f"proposal {proposal_id} is approved already; nothing was changed",
        }
        assert client.call("ProposalDecisions", "ListPending") == {"ok": [[]]}
    finally:
        engine.dispose()
