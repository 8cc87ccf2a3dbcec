"""One rig, one owner: real runner processes on a simulated rig (real ptys, a real Modbus TCP server).

The simulated rig runs in this test process, so its devices' client logs (which process's
bytes reached them: the flock on a pty, the socket of a TCP client) and the pumps' own
counters survive the runners; the runners are `python -m ui.cli.run` processes.
Checked: of two runs started together exactly one runs and the other exits 2 naming the
holder before a byte of it reaches a device; a resume of a live run is refused; after a
SIGKILL the resume goes ahead once the holder is gone (its pid, or its heartbeat) and the
dose ledger matches the pumps exactly; a port held by one process is refused to another.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import select

from instruments.clock import AcceleratedClock
from instruments.errors import InstrumentError
from instruments.rig.factory import endpoints_resolver, open_rig
from instruments.rig.model import load_rig
from instruments.sim.rig import SimulatedRig
from instruments.transport.framing import StxEtxFraming
from instruments.transport.serial_link import PortBusy, SerialLink
from store.engine import make_engine
from store.lease import EXPIRY_ENV, HEARTBEAT_ENV, HOST_ENV, LeaseTiming, acquire, holder_of, run_holder, this_host
from store.migrate import upgrade
from store.repositories import polls
from store.schema import AuditEntry, Command, DoseEvent, ProtocolRun
from tests.protocols.runner_helpers import RIG, protocol_text, wait_for
from tests.ui.test_panel_support import app_signed_in, lab, texts  # noqa: F401 (lab is a fixture)

PUMPS = {"pump1": "chip1", "pump2": "chip2"}
CLI_TIMEOUT_S = 240


def _steps(waits_h: list[float]) -> str:
    """A dose of chip1 and chip2 before each wait: the pumps move only in dose steps."""
    return "".join(
        f"""
[[steps]]
kind = "dose"
concentration = "5 uM"
chips = ["chip1", "chip2"]

[[steps]]
kind = "wait"
duration = "{hours} h"
"""
        for hours in waits_h
    )


@contextmanager
def _bench(tmp_path: Path, url: str, waits_h: list[float]) -> Iterator[dict]:
    """A store at ``url``, the simulated rig, its endpoints file and the protocol file."""
    engine = make_engine(url, create=True)
    upgrade(engine)
    rig = load_rig(RIG)
    sim = SimulatedRig(rig, None, AcceleratedClock.starting_now(3600.0)).start()
    children: list[subprocess.Popen] = []
    try:
        endpoints = tmp_path / "ep.json"
        endpoints.write_text(json.dumps(sim.endpoints_document()))
        (tmp_path / "p.toml").write_text(protocol_text(_steps(waits_h)))
        yield {
            "engine": engine,
            "url": url,
            "sim": sim,
            "rig": rig,
            "children": children,
            "common": ["--rig", str(RIG), "--db", url, "--endpoints", str(endpoints)],
            "protocol": str(tmp_path / "p.toml"),
            "before_ul": _pump_counters(sim, rig),
        }
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
            child.communicate(timeout=30)  # reaps it and closes its pipes
        sim.stop()
        engine.dispose()


def _pump_counters(sim: SimulatedRig, rig) -> dict[str, float]:  # noqa: ANN001
    with open_rig(rig, endpoints_resolver(sim.endpoints_document())) as devices:
        return {p: devices[p].dispensed().to("uL").magnitude for p in PUMPS}


def _cli(bench: dict, *args: str, env: dict | None = None) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-m", "ui.cli.run", *args, *bench["common"]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=Path(RIG).parents[2],
    )
    bench["children"].append(child)
    return child


def _client_pids(sim: SimulatedRig) -> set[int]:
    """Every process whose bytes reached a device of the simulated rig."""
    logs = [s.clients for s in sim.serial_sims.values()] + [s.clients for s in sim.modbus_servers.values()]
    return set().union(*(log.pids() for log in logs))


def _assert_ledger_exact(bench: dict, run_id: int, dose_steps: int) -> None:
    """Every dose of the protocol exactly once, and each pump moved exactly what the ledger says."""
    with bench["engine"].connect() as c:
        confirmed = c.execute(select(Command).where(Command.state == "confirmed")).all()
        doses = c.execute(select(DoseEvent)).all()
    keys = sorted(r.idempotency_key.rsplit("/", 1)[0] for r in confirmed)
    assert keys == sorted(f"run{run_id}/step{2 * k}/{chip}" for k in range(dose_steps) for chip in PUMPS.values())
    assert len(doses) == len(keys)
    after_ul = _pump_counters(bench["sim"], bench["rig"])
    for pump, chip in PUMPS.items():
        moved = after_ul[pump] - bench["before_ul"][pump]
        ledger = sum(r.device_reported_amount for r in confirmed if f"/{chip}/" in r.idempotency_key)
        assert ledger > 0 and abs(moved - ledger) < 0.05, f"{pump} moved {moved} uL, the ledger says {ledger} uL"


def _run_state(engine, run_id: int) -> str | None:  # noqa: ANN001
    with engine.connect() as c:
        return c.execute(select(ProtocolRun.state).where(ProtocolRun.id == run_id)).scalar()


def _last_take_over(engine) -> dict:  # noqa: ANN001
    with engine.connect() as c:
        row = c.execute(
            select(AuditEntry).where(AuditEntry.action == "rig.lease_taken_over").order_by(AuditEntry.seq.desc())
        ).first()
    assert row is not None, "the take-over was not audited"
    return json.loads(row.payload_json)


# -- two runs at once -------------------------------------------------------------------------------
def test_of_two_runs_started_together_one_runs_the_other_is_refused_before_any_byte(tmp_path, store_url):
    # the run outlasts the loser's start-up (seconds on a busy machine) by far: ~19 clock-hours at 3600x
    with _bench(tmp_path, store_url, [1.0, 18.0]) as bench:
        first, second = (_cli(bench, "run", bench["protocol"]) for _ in range(2))
        outcomes = {
            child.pid: (child.communicate(timeout=CLI_TIMEOUT_S), child.returncode) for child in (first, second)
        }
        codes = sorted(code for _, code in outcomes.values())
        assert codes == [0, 2], {pid: (code, err[-600:]) for pid, ((_, err), code) in outcomes.items()}
        winner = next(pid for pid, (_, code) in outcomes.items() if code == 0)
        loser = next(pid for pid, (_, code) in outcomes.items() if code == 2)
        (_, refusal), _ = outcomes[loser]
        lines = [line for line in refusal.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in refusal, refusal
        assert lines[0].startswith("error: rig liver4 is held by host ") and f" pid {winner} " in lines[0]
        assert "UTC" in lines[0] and "--take-over" in lines[0]
        (out, _), _ = outcomes[winner]
        outcome = json.loads(out.splitlines()[-1])
        assert (outcome["run_id"], outcome["state"]) == (1, "done")
        assert outcome["poll_slots"]["stored"] > 0 and outcome["poll_slots"]["lost"] == 0
        with bench["engine"].connect() as c:
            assert c.execute(select(ProtocolRun.id)).scalars().all() == [1]  # the loser created no run
        clients = _client_pids(bench["sim"])
        assert winner in clients, f"the client log missed the winner itself: {clients}"
        assert loser not in clients, "a byte of the refused runner reached a device"
        assert clients <= {winner, os.getpid()}, clients  # this test read the pump counters itself
        _assert_ledger_exact(bench, run_id=1, dose_steps=2)  # every chip dosed once per step, not twice
        assert holder_of(bench["engine"], "liver4") is None  # released on the clean exit


# -- resume of a live run; then after SIGKILL --------------------------------------------------------
SAME_HOST = pytest.param("same host", id="same-host")
OTHER_HOST = pytest.param("other host", id="other-host")


@pytest.mark.parametrize("holder_host", [SAME_HOST, OTHER_HOST])
def test_resume_refuses_a_live_run_and_continues_it_once_its_holder_is_gone(tmp_path, store_url, holder_host):
    if (holder_host == "same host") == ("postgresql" in store_url):
        # the pid check (same host) on SQLite, the heartbeat's expiry (other host) on PostgreSQL: each path
        # once; the race tests run both paths' atomic claim on both backends
        pytest.skip("each of the two ways a holder is found gone runs on one backend")
    other = holder_host == "other host"
    expiry_s = 8.0  # beyond a resume's start-up (~1.5 s quiet): one started right after the kill meets a fresh lease
    lease_env = {EXPIRY_ENV: str(expiry_s), HEARTBEAT_ENV: "0.5"}
    runner_env = {**lease_env, **({HOST_ENV: "bench-pc-2"} if other else {})}
    # the run must outlive `rig status` and the refused resume (two CLI start-ups, over 10 s each at load 15)
    # in its 40 h (40 s) wait; after the kill its resume finishes what is left of it
    with _bench(tmp_path, store_url, [0.5, 40.0]) as bench:
        engine = bench["engine"]
        runner = _cli(bench, "run", bench["protocol"], env=runner_env)
        # running: its lease names run 1, and the first dose is confirmed (the run is in its long wait next)
        wait_for(lambda: (h := run_holder(engine, 1)) is not None and h.holder_pid == runner.pid)
        wait_for(lambda: _count_confirmed(engine) >= 2)

        status = subprocess.run(
            [sys.executable, "-m", "ui.cli.app", "rig", "status", "--db", bench["url"], "--json"],
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            cwd=Path(RIG).parents[2],
        )
        held = {r["rig"]: r for r in json.loads(status.stdout)}["liver4"]
        assert f"pid {runner.pid} (run 1, `chiptwin run`)" in held["holder"] and held["expired"] is False
        assert 0 <= held["heartbeat_age_s"] < expiry_s
        assert held["latest_run"] == 1 and held["poll_slots"]["stored"] > 0 and held["poll_slots"]["lost"] == 0

        refused = _cli(bench, "resume", "1", env=lease_env)
        _, err = refused.communicate(timeout=CLI_TIMEOUT_S)
        assert refused.returncode == 2, err
        assert err.startswith("error: run 1 is still being driven on rig liver4 by host ") and err.count("\n") == 1
        assert f"pid {runner.pid}" in err and runner.poll() is None
        with engine.connect() as c:  # refused before it reconciled anything
            assert not c.execute(select(AuditEntry).where(AuditEntry.action == "run.reconciled")).first()

        assert _run_state(engine, 1) == "running", "the run ended before the kill: the machine is too slow for its wait"
        runner.send_signal(signal.SIGKILL)
        runner.communicate(timeout=30)
        lease_at_kill = holder_of(engine, "liver4")
        assert lease_at_kill is not None and lease_at_kill.holder_pid == runner.pid  # a killed runner releases nothing
        if other:  # its pid cannot be checked from here: only the heartbeat's expiry frees the rig
            early = _cli(bench, "resume", "1", env=lease_env)
            _, err = early.communicate(timeout=CLI_TIMEOUT_S)
            if time.time() < lease_at_kill.expires_utc_s:  # (a machine too busy to start it in 20 s proves nothing)
                assert early.returncode == 2 and "still being driven" in err, err
            wait_for(lambda: time.time() > lease_at_kill.expires_utc_s + 0.5, timeout_s=expiry_s + 10)

        resumed = _cli(bench, "resume", "1", env=lease_env)
        out, err = resumed.communicate(timeout=CLI_TIMEOUT_S)
        assert resumed.returncode == 0, err[-1500:]
        outcome = json.loads(out.splitlines()[-1])
        assert outcome["state"] == "done" and _run_state(engine, 1) == "done"
        assert "took rig liver4 over from" in err
        # every poll slot accounted for: the dead runner's time counts as down, nothing stored was lost
        slots = polls.ledger(engine, 1)
        assert slots.sessions == 2 and outcome["poll_slots"] == slots.total.to_dict()
        assert slots.total.lost == 0 and slots.total.down > 0 and slots.total.stored > 0
        assert slots.total.expected == slots.total.stored + slots.total.skipped + slots.total.down
        shown = subprocess.run(
            [sys.executable, "-m", "ui.cli.app", "runs", "show", "1", "--db", bench["url"]],
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            cwd=Path(RIG).parents[2],
        ).stdout
        line = " ".join(shown.split())  # rich wraps long lines
        assert f"2 runner sessions): {slots.total.stored} of {slots.total.expected} slots stored" in line
        assert f"{slots.total.down} down (no runner), 0 pending, 0 lost" in line
        take_over = _last_take_over(engine)
        assert take_over["previous"]["holder_pid"] == runner.pid and take_over["explicit_take_over"] is False
        assert ("heartbeat expired" if other else f"pid {runner.pid} no longer exists") in take_over["why_gone"]
        _assert_ledger_exact(bench, run_id=1, dose_steps=2)
        assert holder_of(engine, "liver4") is None


def _count_confirmed(engine) -> int:  # noqa: ANN001
    with engine.connect() as c:
        return len(c.execute(select(Command.id).where(Command.state == "confirmed")).all())


# -- a gone holder of another run needs --take-over -------------------------------------------------
def test_a_new_run_on_a_rig_left_by_a_crashed_run_needs_take_over(tmp_path, sqlite_url):
    with _bench(tmp_path, sqlite_url, [0.5]) as bench:
        engine = bench["engine"]
        env = {EXPIRY_ENV: "2", HEARTBEAT_ENV: "0.5"}
        crashed = _cli(bench, "run", bench["protocol"], env={**env, HOST_ENV: "bench-pc-2"})
        wait_for(lambda: run_holder(engine, 1) is not None)
        crashed.send_signal(signal.SIGKILL)
        crashed.communicate(timeout=30)
        wait_for(lambda: time.time() > holder_of(engine, "liver4").expires_utc_s)  # its heartbeat expired
        plain = _cli(bench, "run", bench["protocol"], env=env)
        _, err = plain.communicate(timeout=CLI_TIMEOUT_S)
        assert plain.returncode == 2 and "is gone (its heartbeat expired" in err, err
        assert "`chiptwin resume 1`" in err and "--take-over" in err
        forced = _cli(bench, "run", bench["protocol"], "--take-over", env=env)
        out, err = forced.communicate(timeout=CLI_TIMEOUT_S)
        assert forced.returncode == 0, err[-1500:]
        assert json.loads(out.splitlines()[-1])["run_id"] == 2
        assert _last_take_over(engine)["explicit_take_over"] is True


# -- exclusive ports -------------------------------------------------------------------------------
def test_a_port_held_by_one_process_is_refused_to_another(tmp_path):
    rig = load_rig(RIG)
    with SimulatedRig(rig, None, AcceleratedClock.starting_now(3600.0)) as sim:
        path = sim.endpoints["pump1"]["port"]
        holder = SerialLink("pump1", path, StxEtxFraming())
        holder.open()
        try:
            with pytest.raises(PortBusy) as refused:
                SerialLink("pump1-again", path, StxEtxFraming()).open()
            assert isinstance(refused.value, InstrumentError)
            assert f"{path} is in use by another process" in str(refused.value)
            endpoints = tmp_path / "ep.json"
            endpoints.write_text(json.dumps(sim.endpoints_document()))
            check = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "ui.cli.app",
                    "devices",
                    "check",
                    "--rig",
                    str(RIG),
                    "--endpoints",
                    str(endpoints),
                    "--json",
                    "--timeout-s",
                    "0.5",
                ],
                capture_output=True,
                text=True,
                timeout=CLI_TIMEOUT_S,
            )
            reports = {d["name"]: d for d in json.loads(check.stdout)["devices"]}
            assert check.returncode == 1 and not reports["pump1"]["ok"]
            assert "in use by another process" in reports["pump1"]["error"]
            assert reports["pump2"]["ok"]
            assert sim.serial_sims["pump1"].clients.pids() <= {os.getpid()}  # not a byte of the check's
        finally:
            holder.close()


# -- the panel names each rig's holder ---------------------------------------------------------------
def test_the_overview_names_who_holds_each_rig(lab):  # noqa: F811 (the panel's lab fixture)
    engine = make_engine(lab.url)
    try:
        lease = acquire(engine, "liver4", command="run", run_id=lab.run_id, timing=LeaseTiming(600.0, 5.0))
        app = app_signed_in("tina")
        shown = texts(app)
        assert "rig bench-1: free" in shown
        assert f"rig liver4: held by host {this_host()} pid {os.getpid()} (run {lab.run_id}, `chiptwin run`)" in shown
        assert re.search(r"heartbeat \d+ s ago \(🟢 alive\)", shown), shown
        lease.release()
    finally:
        engine.dispose()
