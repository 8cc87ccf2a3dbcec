"""Crash and fault figures kept honest (#15 item 5): the rig vanishes mid-dose, the database drops out.

(A) The simulated rig runs as its own ``chiptwin sim-rig`` process and is SIGKILLed while a
dose is in flight (a pump that lost power: it stops answering, and a new one starts with its
counter at zero). The runner must park with an alarm naming the pump and the dose, send no
second dose, and leave the intent undecided; ``resume`` on a new rig must not take "the
counter did not move" as "not dosed" (it may have been reset), so it parks again for a person.
When only the pump's line is lost (a USB cable pulled; the pump keeps power and finishes the
dose), the pump's counter survives and ``resume`` confirms the dose from it and completes the
run: the ledger equals what each pump dispensed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from instruments.clock import AcceleratedClock
from instruments.rig.factory import endpoints_resolver, open_rig
from instruments.rig.model import load_rig
from instruments.sim.rig import SimulatedRig
from store.engine import make_engine
from store.migrate import upgrade
from store.schema import Alarm, Command, DoseEvent, ProtocolRun
from tests.protocols.runner_helpers import REPO, RIG, protocol_text

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


def _python(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=dict(os.environ)
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


def _runner(*args: str, db: str, endpoints: Path) -> subprocess.Popen:
    return _python("-m", "ui.cli.run", *args, "--rig", str(RIG), "--db", db, "--endpoints", str(endpoints))


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
