"""The runner: interlock trip → safe state within one poll period; pause/resume/abort from request rows."""

from __future__ import annotations

import json
import time

from sqlalchemy import insert, select

from store.schema import Alarm, PanelRequest, ProtocolRun
from tests.protocols.runner_helpers import Background, protocol_text, sim_runner, wait_until

LONG_WAIT = """
[[steps]]
kind = "wait"
duration = "40 h"
"""
PRESSURE_POLL_S = 60.0  # inlet_pressure's poll period in the rig file


def _state(runner) -> str:  # noqa: ANN001
    with runner.ctx.recorder.engine.connect() as c:
        return c.execute(select(ProtocolRun.state).where(ProtocolRun.id == runner.run_id)).scalar()


def _request(runner, kind: str, payload: dict | None = None) -> int:  # noqa: ANN001
    with runner.ctx.recorder.engine.begin() as c:
        return c.execute(
            insert(PanelRequest).values(
                run_id=runner.run_id,
                kind=kind,
                payload_json=json.dumps(payload or {}),
                requested_by="alice",
                requested_utc_s=runner.ctx.clock.now_s(),
            )
        ).inserted_primary_key[0]


def _acknowledged(runner, request_id: int):  # noqa: ANN001, ANN201
    with runner.ctx.recorder.engine.connect() as c:
        row = c.execute(select(PanelRequest).where(PanelRequest.id == request_id)).first()
    return row if row.state != "pending" else None


def test_interlock_trip_puts_the_rig_in_safe_state_within_one_poll_period(tmp_path) -> None:
    scenario = "seed = 1\n[sensors.pressure]\nnoise_sd = 0.05\nvalues = { inlet_pressure = 30.0 }\n"
    text = protocol_text(LONG_WAIT, '"pressure > 250 mbar for 10 s -> safe_state, alarm"')
    with sim_runner(tmp_path, text, scenario, rate=600.0) as (runner, _sim):
        background = Background(runner)
        try:
            assert wait_until(lambda: runner.monitor.trips, 20.0), "the interlock never tripped"
            trip = runner.monitor.trips[0]
            # target: one poll period + 100 ms (wall) from the completing reading to the safe-state command
            assert trip.latency_wall_s <= PRESSURE_POLL_S / 600.0 + 0.1
            assert trip.command_t_s - trip.condition_t_s <= PRESSURE_POLL_S + 0.1 * 600.0
            assert runner.control.state == "parked" and runner.control.safe_state_log
            assert wait_until(lambda: _state(runner) == "parked", 30.0)
            with runner.ctx.recorder.engine.connect() as c:
                alarms = c.execute(select(Alarm).where(Alarm.run_id == runner.run_id)).all()
            assert any(a.source == "interlock:inlet_pressure" and a.severity == "critical" for a in alarms)
        finally:
            runner.control.stop("aborted", "test over")
            assert background.result() == "aborted"


def test_a_run_nobody_can_resume_ends_parked_when_an_interlock_parks_it(tmp_path) -> None:
    """`chiptwin demo --no-panel`: no person can resume a parked run, so parking ends it (not a hang)."""
    scenario = "seed = 1\n[sensors.pressure]\nnoise_sd = 0.05\nvalues = { inlet_pressure = 30.0 }\n"
    text = protocol_text(LONG_WAIT, '"pressure > 250 mbar for 10 s -> safe_state, alarm"')
    with sim_runner(tmp_path, text, scenario, rate=600.0) as (runner, _sim):
        runner.control.parked_ends_run = True
        background = Background(runner)
        assert background.result() == "parked"  # bounded: Background's own time limit
        assert runner.monitor.trips and _state(runner) == "parked"


def test_pause_resume_abort_from_request_rows(tmp_path) -> None:
    with sim_runner(tmp_path, protocol_text(LONG_WAIT), rate=3600.0) as (runner, _sim):
        background = Background(runner)
        try:
            assert wait_until(lambda: _state(runner) == "running", 10.0)
            started = time.monotonic()
            pause = _request(runner, "pause")
            row = wait_until(lambda: _acknowledged(runner, pause), 5.0)
            assert row is not None and row.state == "done" and time.monotonic() - started < 1.0
            assert runner.control.state == "paused" and _state(runner) == "paused"
            assert runner.control.safe_state_log[-1][1] == "paused by alice"
            resume = _request(runner, "resume")
            assert wait_until(lambda: _acknowledged(runner, resume), 30.0).state == "done"
            assert runner.control.state == "running"
            refused = _request(runner, "resume")  # not paused: refused, never silently dropped
            assert wait_until(lambda: _acknowledged(runner, refused), 30.0).state == "refused"
            abort = _request(runner, "abort")
            assert wait_until(lambda: _acknowledged(runner, abort), 30.0).state == "done"
            assert background.result(10.0) == "aborted"
            assert _state(runner) == "aborted"
        finally:
            runner.control.stop("aborted", "test over")
            background.result(10.0)


def test_requests_queued_together_are_all_answered_in_order(tmp_path) -> None:
    with sim_runner(tmp_path, protocol_text(LONG_WAIT), rate=3600.0) as (runner, _sim):
        background = Background(runner)
        try:
            assert wait_until(lambda: _state(runner) == "running", 10.0)
            ids = [_request(runner, kind) for kind in ("pause", "resume", "pause", "bogus")]
            assert wait_until(lambda: all(_acknowledged(runner, i) for i in ids), 30.0)  # bounded, not a latency figure
            # the watcher notes a request after its acknowledgement commits: wait for the note too
            assert wait_until(lambda: len(runner.watcher.handled) == len(ids), 10.0)
            assert [s for _, _, s in runner.watcher.handled] == ["done", "done", "done", "refused"]
            assert runner.control.state == "paused"
        finally:
            runner.control.stop("aborted", "test over")
            background.result(10.0)
