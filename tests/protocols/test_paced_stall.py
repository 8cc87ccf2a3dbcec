"""A stepped clock waits for an interlock's sensor that stalls, and still parks on one that is dead.

A real simulated rig (Modbus TCP on 127.0.0.1, ptys) and a real SQLite store run a long wait on the
demo's stepped ``SharedClock`` at 36000x with an oxygen interlock. The O2 sensor of chip 1 stops
answering for several *wall* seconds (the simulated Modbus gateway drops its requests), long enough
for its driver to time out, retry, declare the device lost and back off before probing it again, all
in wall time. The clock must not run on meanwhile: every gap between good oxygen readings stays
inside the interlock's blind grace and the run ends done. A sensor that never answers again must
still make its interlock blind — the run parks after a bounded wall wait.

The watchdog's wall-time guard (``BLIND_MIN_WALL_S``) is lowered here, so that only the clock's pacing
stands between a few seconds' stall and a blind interlock.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from instruments.connection import RetryPolicy
from instruments.sim.modbus_devices import SimReply
from protocols.run import interlocks, landings
from store.schema import Alarm, Reading
from tests.protocols.runner_helpers import Background, protocol_text, sim_runner, step, wait_until

RATE = 36000.0
STALL_WALL_S = 12.0  # three failed polls (three 1 s attempts each, with back-off): the device is lost
BACKOFF_MAX_S = 2.0  # a lost device is probed again after this many wall seconds
O2_UNIT = 1  # chip1's O2 sensor (do1) on the rig's Modbus TCP gateway
CHANNEL = "chip1_o2"
STEPS = step("wait", duration="24 h")
# as the demo: the O2 sensors share the Modbus gateway with the pressure sensor (read every minute; this
# scenario's inlet pressure is higher than the demo's, above its 250 mbar)
INTERLOCK = '"pressure > 900 mbar for 10 s -> safe_state, alarm", "oxygen < 20 % for 30 min -> safe_state, alarm"'


def stall_unit(sim, unit_id: int) -> threading.Event:  # noqa: ANN001
    """While the returned event is set, the simulated gateway does not answer ``unit_id`` at all."""
    stalled = threading.Event()
    server = next(s for s in sim.modbus_servers.values() if unit_id in s.bus.devices)
    real = server.bus.reply

    def reply(unit: int, pdu: bytes) -> SimReply:
        return SimReply(None) if unit == unit_id and stalled.is_set() else real(unit, pdu)

    server.bus.reply = reply
    return stalled


def good_times(runner, channel: str) -> list[float]:  # noqa: ANN001
    with runner.ctx.recorder.engine.connect() as c:
        rows = c.execute(
            select(Reading.t_utc_s)
            .where(Reading.channel_id == runner.ctx.ids["channels"][channel], Reading.quality == 0)
            .order_by(Reading.t_utc_s)
        ).all()
    return [r.t_utc_s for r in rows]


def failed_polls(runner, channel: str) -> int:  # noqa: ANN001
    with runner.ctx.recorder.engine.connect() as c:
        rows = c.execute(select(Reading.quality).where(Reading.channel_id == runner.ctx.ids["channels"][channel])).all()
    return sum(1 for r in rows if r.quality & 4)  # DEVICE_ERROR: the last good value, held


def blind_alarms(runner) -> list[str]:  # noqa: ANN001
    with runner.ctx.recorder.engine.connect() as c:
        rows = c.execute(select(Alarm.message).where(Alarm.run_id == runner.run_id)).all()
    return [r.message for r in rows if "is blind" in r.message]


@pytest.fixture
def sensitive_watchdog(monkeypatch):  # noqa: ANN201
    monkeypatch.setattr(interlocks, "BLIND_MIN_WALL_S", 0.5)


def test_a_sensor_that_stalls_for_seconds_holds_the_stepped_clock(tmp_path, sensitive_watchdog) -> None:
    policy = RetryPolicy(backoff_max_s=BACKOFF_MAX_S)
    text = protocol_text(STEPS, INTERLOCK)
    with sim_runner(tmp_path, text, rate=RATE, stepped=True, policy=policy) as (runner, sim):
        stalled = stall_unit(sim, O2_UNIT)
        runner.control.parked_ends_run = True  # a blind interlock's park ends the run (nobody resumes it)
        background = Background(runner)
        try:
            assert wait_until(lambda: len(good_times(runner, CHANNEL)) >= 2, 30.0), "no oxygen readings"
            stalled.set()
            stalled_at = time.monotonic()
            assert wait_until(lambda: CHANNEL in runner.sink.failing_now(), 20.0), "the stall was not seen"
            time.sleep(max(STALL_WALL_S - (time.monotonic() - stalled_at), 0.0))  # the stall's length
            stalled.clear()
            state = background.result(180.0)
        finally:
            stalled.clear()
            if background.state is None:
                runner.control.stop("aborted", "test over")
            background.result(10.0)
        assert state == "done", (state, runner.control.why)
        assert blind_alarms(runner) == []
        times = good_times(runner, CHANNEL)
        grace_s = runner.monitor.grace_s[CHANNEL]
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert times[-1] - times[0] > 20 * 3600  # read to the end of the wait
        assert max(gaps) <= grace_s, f"{max(gaps):.0f} clock s without a good reading (grace {grace_s:.0f} s)"
        assert failed_polls(runner, CHANNEL) >= 3  # the stall was seen: polls failed (and were waited for)


def test_a_sensor_dead_for_good_still_parks_the_run_within_a_bounded_wall_time(tmp_path, sensitive_watchdog) -> None:
    with sim_runner(tmp_path, protocol_text(STEPS, INTERLOCK), rate=RATE, stepped=True) as (runner, sim):
        stalled = stall_unit(sim, O2_UNIT)
        runner.control.parked_ends_run = True  # a blind interlock's park ends the run (nobody resumes it)
        background = Background(runner)
        try:
            assert wait_until(lambda: len(good_times(runner, CHANNEL)) >= 2, 30.0), "no oxygen readings"
            stalled.set()
            died_at = time.monotonic()
            # the driver's failing polls (three attempts of 1 s each, until it declares the device lost),
            # then the clock's bounded wait for this channel, then the watchdog's grace on the running clock
            state = background.result(60.0)
            parked_after_s = time.monotonic() - died_at
            assert state == "parked", f"the interlock never went blind ({state})"
        finally:
            if background.state is None:
                runner.control.stop("aborted", "test over")
            background.result(10.0)
        alarms = blind_alarms(runner)
        assert alarms and all(CHANNEL in a for a in alarms), alarms
        assert parked_after_s >= landings.PACE_WAIT_WALL_S  # the clock waited for the sensor first
        assert len(good_times(runner, "chip2_o2")) >= 2  # the other chip's sensor kept reading
