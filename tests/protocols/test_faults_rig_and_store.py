"""Crash and fault figures kept honest (#15 item 5): the rig vanishes mid-dose, the database drops out.

(A) The simulated rig runs as its own ``chiptwin sim-rig`` process and is SIGKILLed while a
dose is in flight (a pump that lost power: it stops answering, and a new one starts with its
counter at zero). The runner must park with an alarm naming the pump and the dose, send no
second dose, and leave the intent undecided; ``resume`` on a new rig must not take "the
counter did not move" as "not dosed" (it may have been reset), so it parks again for a person.
When only the pump's line is lost (a USB cable pulled; the pump keeps power and finishes the
dose), the pump's counter survives and ``resume`` confirms the dose from it and completes the
run: the ledger equals what each pump dispensed.

(B) On PostgreSQL, the runner's server sessions are terminated mid-run (what a server restart
does to its clients; only this test's runner's sessions, by application_name). A short loss
is ridden out (the step is re-entered by its keys once the store answers): the run completes,
every dose once, the audit chain intact. A long loss (through a proxy that stays down past
``CHIPTWIN_STORE_OUTAGE_S``) stops the runner with the rig in its safe state and one line
saying so; ``chiptwin resume`` completes the run with an exact ledger.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from instruments.clock import AcceleratedClock
from instruments.rig.factory import endpoints_resolver, open_rig
from instruments.rig.model import load_rig
from instruments.sim.rig import SimulatedRig
from protocols.run.runner import Runner
from protocols.run.store_outage import OUTAGE_LIMIT_ENV
from store.audit import verify_audit
from store.engine import make_engine
from store.migrate import upgrade
from store.schema import Alarm, AuditEntry, Command, DoseEvent, ProtocolRun, Reading
from tests.protocols.runner_helpers import REPO, RIG, Background, protocol_text
from tests.protocols.tcp_proxy import TcpProxy
from ui.cli.app import app
from ui.panel.auth import add_user

PASSWORD = "a long enough passphrase"
CLOCK_RATE = 10.0  # slow enough that a ~110 uL dose at 100 uL/min lasts ~7 s of wall time
DOSE_THEN_WAIT = """
[[steps]]
kind = "dose"
concentration = "100 uM"
chips = ["chip1", "chip2"]

[[steps]]
kind = "wait"
duration = "0.01 h"
"""


def _python(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def _sim_rig(endpoints: Path) -> subprocess.Popen:
    child = _python(
        "-m",
        "ui.cli.app",
        "sim-rig",
        "--rig",
        str(RIG),
        "--endpoints-file",
        str(endpoints),
        "--clock-rate",
        str(CLOCK_RATE),
    )
    if not _wait(lambda: endpoints.exists() or child.poll() is not None, 30.0) or not endpoints.exists():
        child.kill()
        raise AssertionError(f"sim-rig did not start: {child.communicate(timeout=10)[1].decode()[-800:]}")
    return child


def _runner(*args: str, db: str, endpoints: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return _python("-m", "ui.cli.run", *args, "--rig", str(RIG), "--db", db, "--endpoints", str(endpoints), env=env)


def _wait(predicate, timeout_s: float, poll_s: float = 0.02):  # noqa: ANN001, ANN202
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := predicate():
            return found
        time.sleep(poll_s)
    return None


def _rows(engine, table, *where):  # noqa: ANN001, ANN202
    with engine.connect() as c:
        return c.execute(select(table).where(*where).order_by(table.id)).all()


def _stop(*children: subprocess.Popen) -> None:
    for child in children:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=10)


def _counters(endpoints: Path) -> dict[str, float]:
    with open_rig(load_rig(RIG), endpoints_resolver(json.loads(endpoints.read_text()))) as devices:
        return {p: devices[p].dispensed().to("uL").magnitude for p in ("pump1", "pump2")}


def test_a_pump_vanishing_mid_dose_parks_and_resume_never_guesses(tmp_path) -> None:
    db = str(tmp_path / "lab.db")
    engine = make_engine(db, create=True)
    upgrade(engine)
    protocol = tmp_path / "p.toml"
    protocol.write_text(protocol_text(DOSE_THEN_WAIT))
    first_ep, second_ep = tmp_path / "ep1.json", tmp_path / "ep2.json"
    rig1 = _sim_rig(first_ep)
    children = [rig1]
    try:
        runner = _runner("run", str(protocol), db=db, endpoints=first_ep)
        children.append(runner)
        sent = _wait(lambda: _rows(engine, Command, Command.state == "sent"), 60.0)
        assert sent, "no dose was sent"
        t_kill = time.monotonic()
        rig1.send_signal(signal.SIGKILL)  # the whole rig loses power with the dose in flight
        out, err = runner.communicate(timeout=90)
        parked_after_s = time.monotonic() - t_kill
        state = _rows(engine, ProtocolRun)[0].state
        assert state == "parked", f"run ended {state} ({runner.returncode}): {err.decode()[-1500:]}"
        commands = _rows(engine, Command)
        assert [c.idempotency_key for c in commands] == ["run1/step0/chip1/a1"], "a second dose command was sent"
        assert commands[0].state in ("pending", "sent"), f"decided without evidence: {commands[0].state}"
        assert not _rows(engine, DoseEvent)
        critical = [a.message for a in _rows(engine, Alarm, Alarm.severity == "critical")]
        assert any("pump1" in m and "run1/step0/chip1" in m for m in critical), critical
        print(f"parked {parked_after_s:.1f} s after the rig vanished")

        rig2 = _sim_rig(second_ep)  # the rig powered up again: its pumps' counters start at zero
        children.append(rig2)
        resumed = _runner("resume", "1", db=db, endpoints=second_ep)
        children.append(resumed)
        out, err = resumed.communicate(timeout=90)
        assert _rows(engine, ProtocolRun)[0].state == "parked", err.decode()[-1500:]
        commands = _rows(engine, Command)
        assert len(commands) == 1 and commands[0].state in ("pending", "sent"), [
            (c.idempotency_key, c.state) for c in commands
        ]
        assert "needs a person" in commands[0].error and "reset" in commands[0].error
        critical = [a.message for a in _rows(engine, Alarm, Alarm.severity == "critical")]
        assert any("pump1" in m and "run1/step0/chip1" in m and "reset" in m for m in critical[1:]), critical
        assert not _rows(engine, DoseEvent)
        assert _counters(second_ep) == {"pump1": 0.0, "pump2": 0.0}, "resume dosed on a counter it could not trust"

        # a technician looks at chip1's syringe, finds the whole dose went in, and settles it (signed)
        requested_ul = float(commands[0].requested_amount)
        add_user(engine, "tina", "technician", PASSWORD)
        settle = [
            "runs", "settle", "1", "run1/step0/chip1/a1", "--dispensed-ul", f"{requested_ul:.3f}",
            "--reason", "syringe emptied by the full dose", "--user", "tina", "--password-stdin", "--db", db,
        ]  # fmt: skip
        refused = CliRunner().invoke(app, settle, input="wrong\n")
        assert refused.exit_code == 2 and "signature does not match" in refused.output
        settled = CliRunner().invoke(app, settle, input=PASSWORD + "\n")
        assert settled.exit_code == 0, settled.output
        resumed = _runner("resume", "1", db=db, endpoints=second_ep)
        children.append(resumed)
        out, err = resumed.communicate(timeout=90)
        assert _rows(engine, ProtocolRun)[0].state == "done", err.decode()[-1500:]
        ledger = {e.chip_id: e.volume_ml * 1000 for e in _rows(engine, DoseEvent)}
        counters = _counters(second_ep)
        assert counters["pump1"] == 0.0, "chip1, settled as dosed, was dosed again"
        assert len(ledger) == 2 and abs(sorted(ledger.values())[0] - min(requested_ul, counters["pump2"])) < 1.0
        assert verify_audit(engine).intact
        with engine.connect() as c:
            actors = {e.actor for e in c.execute(select(AuditEntry).where(AuditEntry.action == "dose.settled"))}
        assert actors == {"tina"}
    finally:
        _stop(*children)
        engine.dispose()


def test_a_pump_line_lost_mid_dose_parks_and_resume_confirms_from_the_surviving_counter(tmp_path) -> None:
    db = str(tmp_path / "lab.db")
    engine = make_engine(db, create=True)
    upgrade(engine)
    protocol = tmp_path / "p.toml"
    protocol.write_text(protocol_text(DOSE_THEN_WAIT))
    sim = SimulatedRig(load_rig(RIG), None, AcceleratedClock.starting_now(CLOCK_RATE)).start()
    children: list[subprocess.Popen] = []
    try:
        first_ep, second_ep = tmp_path / "ep1.json", tmp_path / "ep2.json"
        first_ep.write_text(json.dumps(sim.endpoints_document()))
        runner = _runner("run", str(protocol), db=db, endpoints=first_ep)
        children.append(runner)
        assert _wait(lambda: _rows(engine, Command, Command.state == "sent"), 60.0), "no dose was sent"
        pump1 = sim.serial_sims["pump1"]
        pump1.vanish(gap_s=2.0)  # the cable is out for 2 s; the pump keeps power and pumps on
        out, err = runner.communicate(timeout=90)
        assert _rows(engine, ProtocolRun)[0].state == "parked", err.decode()[-1500:]
        commands = _rows(engine, Command)
        assert [(c.idempotency_key, c.state) for c in commands] == [("run1/step0/chip1/a1", "sent")]
        assert _wait(lambda: pump1.path is not None, 10.0), "the pump did not come back"

        second_ep.write_text(json.dumps(sim.endpoints_document()))  # plugged in again, under a new path
        resumed = _runner("resume", "1", db=db, endpoints=second_ep)
        children.append(resumed)
        out, err = resumed.communicate(timeout=90)
        assert _rows(engine, ProtocolRun)[0].state == "done", err.decode()[-1500:]
        commands = _rows(engine, Command)
        assert [(c.idempotency_key, c.state) for c in commands] == [
            ("run1/step0/chip1/a1", "confirmed"),
            ("run1/step0/chip2/a1", "confirmed"),
        ], "a dose was repeated or skipped"
        doses = _rows(engine, DoseEvent)
        assert [d.command_id for d in doses] == [c.id for c in commands]
        counters = _counters(second_ep)
        for pump, dose in zip(("pump1", "pump2"), doses):
            assert abs(counters[pump] - dose.volume_ml * 1000.0) < 0.05, (pump, counters[pump], dose.volume_ml)
    finally:
        _stop(*children)
        sim.stop()
        engine.dispose()


ROUNDS = 4
KILLS = 30
DOSES_AND_WAITS = "".join(
    f"""
[[steps]]
kind = "dose"
concentration = "5 uM"
chips = ["chip1", "chip2"]

[[steps]]
kind = "wait"
duration = "{1.0 + k % 2} h"
"""
    for k in range(ROUNDS)
)


def _terminate(admin_dsn: str, application_name: str) -> int:
    """What a server restart does to a client: its sessions end under it (this runner's only)."""
    with psycopg.connect(admin_dsn, autocommit=True) as c:
        return len(
            c.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = %s",
                (application_name,),
            ).fetchall()
        )


def _exact_ledger(engine, endpoints: Path, before: dict[str, float]) -> None:  # noqa: ANN001
    confirmed = _rows(engine, Command, Command.state == "confirmed")
    keys = sorted(c.idempotency_key.rsplit("/", 1)[0] for c in confirmed)
    assert keys == sorted(f"run1/step{2 * k}/{chip}" for k in range(ROUNDS) for chip in ("chip1", "chip2"))
    doses = _rows(engine, DoseEvent)
    assert sorted(d.command_id for d in doses) == sorted(c.id for c in confirmed), "a dose row twice or missing"
    counters = _counters(endpoints)
    for pump, chip in (("pump1", "chip1"), ("pump2", "chip2")):
        ledger = sum(c.device_reported_amount for c in confirmed if f"/{chip}/" in c.idempotency_key)
        assert abs(counters[pump] - before[pump] - ledger) < 0.05, (pump, counters[pump], ledger)


def test_a_short_store_outage_is_ridden_out_and_nothing_is_written_twice(
    tmp_path, postgres_url, postgres_admin_dsn
) -> None:
    engine = make_engine(postgres_url)
    upgrade(engine)
    protocol = tmp_path / "p.toml"
    protocol.write_text(protocol_text(DOSES_AND_WAITS))
    sim = SimulatedRig(load_rig(RIG), None, AcceleratedClock.starting_now(1800.0)).start()
    app = f"chiptwin-faults-{uuid.uuid4().hex[:8]}"
    runner = None
    try:
        endpoints = tmp_path / "ep.json"
        endpoints.write_text(json.dumps(sim.endpoints_document()))
        before = _counters(endpoints)
        runner = _runner("run", str(protocol), db=postgres_url, endpoints=endpoints, env={"PGAPPNAME": app})
        assert _wait(lambda: _rows(engine, Command), 60.0), "the run did not start dosing"
        killed, rng = 0, random.Random(15)
        for _ in range(KILLS):  # losses at random moments: mid-transaction too, not only idle sessions
            time.sleep(rng.uniform(0.05, 0.3))
            if runner.poll() is not None:
                break
            killed += _terminate(postgres_admin_dsn, app)
        out, err = runner.communicate(timeout=90)
        print(f"{killed} sessions terminated")
        assert killed >= 3, f"only {killed} sessions were terminated"
        assert _rows(engine, ProtocolRun)[0].state == "done", f"{runner.returncode}: {err.decode()[-1500:]}"
        _exact_ledger(engine, endpoints, before)
        report = verify_audit(engine)
        assert report.intact, report
        with engine.connect() as c:
            assert c.execute(select(func.count()).select_from(Reading)).scalar() > 0
    finally:
        if runner is not None:
            _stop(runner)
        sim.stop()
        engine.dispose()


# statement (its start) -> which occurrence loses its connection mid-transaction
CUTS = {
    "INSERT INTO command": 1,  # the intent row, before any byte goes to the pump
    "UPDATE command SET state=%(state)s": 3,  # "sent": the pump is already dosing
    "INSERT INTO doseevent": 3,  # the ledger row, with the intent's "confirmed"
    "INSERT INTO step": 4,  # a step's start
    "UPDATE protocolrun SET checkpoint_json": 4,  # a checkpoint
}


class Cutter:
    """Terminates the runner's own server session just before chosen statements (once each):
    the statement fails mid-transaction, as it would when the server restarts at that moment."""

    def __init__(self, engine, admin_dsn: str) -> None:  # noqa: ANN001
        self.admin_dsn, self.seen, self.cut = admin_dsn, dict.fromkeys(CUTS, 0), []
        event.listen(engine, "before_cursor_execute", self._before)

    def _before(self, conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        for start, nth in CUTS.items():
            if statement.startswith(start):
                self.seen[start] += 1
                if self.seen[start] == nth:
                    pid = conn.connection.dbapi_connection.info.backend_pid
                    with psycopg.connect(self.admin_dsn, autocommit=True) as admin:
                        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
                    self.cut.append(start)


def test_a_connection_lost_mid_transaction_anywhere_in_a_dose_is_retried_exactly_once(
    tmp_path, postgres_url, postgres_admin_dsn
) -> None:
    engine = make_engine(postgres_url)
    upgrade(engine)
    rig = load_rig(RIG)
    sim = SimulatedRig(rig, None, AcceleratedClock.starting_now(3600.0)).start()
    background = None
    try:
        endpoints = tmp_path / "ep.json"
        endpoints.write_text(json.dumps(sim.endpoints_document()))
        before = _counters(endpoints)
        with open_rig(rig, endpoints_resolver(sim.endpoints_document())) as devices:
            runner = Runner.create(protocol_text(DOSES_AND_WAITS), rig, engine, devices, sim.clock)
            cutter = Cutter(engine, postgres_admin_dsn)
            background = Background(runner)
            state = background.result(60.0)
            runner.control.stop("aborted", "test over")  # a no-op once done; ends a hung run
            background.result(10.0)
        assert state == "done", f"the run ended {state} after losing the store mid-transaction"
        assert sorted(cutter.cut) == sorted(CUTS), f"not every cut happened: {cutter.cut}"
        _exact_ledger(engine, endpoints, before)
        report = verify_audit(engine)
        assert report.intact, report
    finally:
        sim.stop()
        engine.dispose()


def test_a_long_store_outage_stops_in_the_safe_state_and_resume_completes(tmp_path, postgres_url) -> None:
    direct = make_url(postgres_url)
    proxy = TcpProxy(direct.host or "127.0.0.1", direct.port or 5432).start()
    url = direct.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    protocol = tmp_path / "p.toml"
    protocol.write_text(protocol_text(DOSES_AND_WAITS))
    sim = SimulatedRig(load_rig(RIG), None, AcceleratedClock.starting_now(1800.0)).start()
    children: list[subprocess.Popen] = []
    try:
        endpoints = tmp_path / "ep.json"
        endpoints.write_text(json.dumps(sim.endpoints_document()))
        before = _counters(endpoints)
        limit = {OUTAGE_LIMIT_ENV: "3"}
        runner = _runner("run", str(protocol), db=url, endpoints=endpoints, env=limit)
        children.append(runner)
        assert _wait(lambda: _rows(engine, Command), 60.0), "the run did not start dosing"
        engine.dispose()
        stops_before = sum(r.endswith(b"STP\r") for r in sim.serial_sims["pump1"].requests)
        proxy.down()  # the server is gone for longer than the runner's limit
        t_down = time.monotonic()
        out, err = runner.communicate(timeout=60)
        stopped_after_s = time.monotonic() - t_down
        proxy.up()
        message = err.decode()
        assert runner.returncode == 2, f"{runner.returncode}: {message[-1500:]}"
        assert "store was unreachable" in message and "chiptwin resume 1" in message, message[-1500:]
        assert sum(r.endswith(b"STP\r") for r in sim.serial_sims["pump1"].requests) > stops_before, "no safe state"
        assert stopped_after_s < 30.0
        print(f"runner stopped {stopped_after_s:.1f} s after the store went down")

        resumed = _runner("resume", "1", db=url, endpoints=endpoints, env=limit)
        children.append(resumed)
        out, err = resumed.communicate(timeout=90)
        assert _rows(engine, ProtocolRun)[0].state == "done", f"{resumed.returncode}: {err.decode()[-1500:]}"
        _exact_ledger(engine, endpoints, before)
        report = verify_audit(engine)
        assert report.intact, report
    finally:
        _stop(*children)
        sim.stop()
        engine.dispose()
        proxy.stop()
