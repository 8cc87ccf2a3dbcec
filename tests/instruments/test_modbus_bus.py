"""One bad device must not silence the others on the same bus (the pymodbus failure mode):
two sensors on one RS-485 line (RTU on a pty) or one TCP gateway, one of them dead."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest

from instruments.connection import ConnectionState, RetryPolicy
from instruments.drivers.hamilton import VisiFermDO
from instruments.errors import DeviceLost, DeviceTimeout, InstrumentError, TransportError
from instruments.sim.modbus_devices import SimModbusBus, visiferm_do_sim
from instruments.sim.modbus_sim import ModbusRtuSim, ModbusTcpSim
from instruments.transport.modbus_link import ModbusBus, RtuLine, TcpEndpoint

# 0.25 s, not a real sensor's 0.1 s: the simulated slave is a thread of this process, and on a loaded
# 2-core CI machine it was seen answering later than 0.1 s twice in a row (a timeout, then its late
# reply read as the retry's); the property is that a dead neighbour does not silence a live unit
POLICY = RetryPolicy(
    timeout_s=0.25,
    retries=1,
    backoff_initial_s=0.01,
    backoff_max_s=0.4,
    failures_until_reconnect=2,
    failures_until_lost=4,
)
GOOD_PERIOD_S = 0.2  # 5 Hz, faster than a real DO/pH sensor updates
WINDOW_S = 2.0


@pytest.fixture(autouse=True)
def no_thread_leak() -> Iterator[None]:
    before = threading.active_count()
    yield
    assert threading.active_count() == before, "a simulator or client thread was left running"


def _poll(sensor: VisiFermDO, stop: threading.Event, period_s: float, log: list) -> None:
    while not stop.is_set():
        started = time.monotonic()
        try:
            log.append((started, sensor.read()[0].value))
        except InstrumentError as exc:
            log.append((started, exc))
        stop.wait(max(0.0, period_s - (time.monotonic() - started)))


@pytest.mark.parametrize("transport", ["rtu", "tcp_gateway"])
def test_dead_sensor_does_not_silence_its_neighbour(transport: str) -> None:
    # unit 1 answers; unit 2 is configured but nothing answers at that address
    sim_bus = SimModbusBus([visiferm_do_sim(unit_id=1, value_source=lambda t: 80.0)])
    server = ModbusRtuSim(sim_bus) if transport == "rtu" else ModbusTcpSim(sim_bus)
    with server:
        endpoint = RtuLine(server.port) if transport == "rtu" else TcpEndpoint("127.0.0.1", server.port)
        with ModbusBus(endpoint, POLICY) as bus:
            good = VisiFermDO("good", bus.device(1, "good"))
            dead = VisiFermDO("dead", bus.device(2, "dead"))
            good_log: list = []
            dead_log: list = []
            stop = threading.Event()
            pollers = [
                threading.Thread(target=_poll, args=(good, stop, GOOD_PERIOD_S, good_log)),
                threading.Thread(target=_poll, args=(dead, stop, 0.0, dead_log)),
            ]
            for thread in pollers:
                thread.start()
            # WINDOW_S on a quiet machine; a busy one gets up to 5x as long for the same 10 reads
            deadline = time.monotonic() + 5 * WINDOW_S
            while len(good_log) < WINDOW_S / GOOD_PERIOD_S and time.monotonic() < deadline:
                time.sleep(0.05)
            stop.set()
            for thread in pollers:
                thread.join(timeout=5)
            assert bus.is_open and bus.reopen_count == 0  # the line was never closed under the good sensor

    errors = [entry for _, entry in good_log if isinstance(entry, Exception)]
    # the slave is a thread of this process: in a full test session it was seen starved past two timeouts
    # in a row once (a DeviceTimeout after the retry); a wrong reply or more than that one is a failure
    assert len(errors) <= 1 and all(isinstance(e, DeviceTimeout) for e in errors), (
        f"the healthy sensor failed: {errors[:3]}"
    )
    assert all(value == 80.0 for _, value in good_log if not isinstance(value, Exception))
    # at its nominal rate the good sensor reads WINDOW_S / GOOD_PERIOD_S = 10 times; a dead
    # neighbour may delay each of its two block reads by one timeout (half-duplex line), and a
    # loaded 2-core CI machine slows the threads further: the property is "keeps reading,
    # with bounded gaps", checked below, not an exact rate. In a long test session the
    # simulator thread (same process) can answer later than the 0.1 s timeout once, so the
    # good sensor may itself need one retry (a timeout and a back-off) — it still never fails.
    assert len(good_log) >= 0.5 * WINDOW_S / GOOD_PERIOD_S
    gaps_s = [b[0] - a[0] for a, b in zip(good_log, good_log[1:])]
    dead_neighbour_s = 2 * POLICY.timeout_s
    own_retry_s = POLICY.timeout_s + POLICY.backoff_max_s
    # + slack for a loaded machine: 0.5 s when quiet, growing with the run queue per core (at load 15 on
    # 2 cores two gaps of ~2 s were seen); a silenced sensor fails the count above whatever the load
    slack_s = 0.5 * max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
    assert max(gaps_s) < GOOD_PERIOD_S + dead_neighbour_s + own_retry_s + slack_s
    assert good.connection_state is ConnectionState.OK
    assert dead.connection_state is ConnectionState.LOST
    assert any(isinstance(entry, DeviceLost) for _, entry in dead_log)


def test_lost_device_fails_fast_until_its_next_probe_then_comes_back() -> None:
    sim_bus = SimModbusBus([visiferm_do_sim(unit_id=1)])
    with ModbusTcpSim(sim_bus) as server, ModbusBus(TcpEndpoint("127.0.0.1", server.port), POLICY) as bus:
        link = bus.device(3, "late")
        for _ in range(5):  # each read: 2 attempts; lost after 4 failures
            with pytest.raises(InstrumentError) as error:
                link.read_registers(2089, 10)
            if isinstance(error.value, DeviceLost):
                break
        assert link.state is ConnectionState.LOST
        started = time.monotonic()
        with pytest.raises(DeviceLost, match="next probe"):
            link.read_registers(2089, 10)
        assert time.monotonic() - started < POLICY.timeout_s  # no bus time: one try would wait a timeout
        sim_bus.devices[3] = visiferm_do_sim(name="late", unit_id=3)  # plugged back in
        time.sleep(POLICY.backoff_max_s)
        assert len(link.read_registers(2089, 10)) == 10
        assert link.state is ConnectionState.OK


def test_bus_reopens_transparently_after_the_link_was_closed() -> None:
    sim_bus = SimModbusBus([visiferm_do_sim(unit_id=1, value_source=lambda t: 12.0)])
    with ModbusTcpSim(sim_bus) as server, ModbusBus(TcpEndpoint("127.0.0.1", server.port), POLICY) as bus:
        sensor = VisiFermDO("do", bus.device(1, "do"))
        assert sensor.read()[0].value == 12.0
        bus._client.close()  # what pymodbus does after repeated timeouts
        assert sensor.read()[0].value == 12.0
        assert bus.reopen_count == 1


def test_server_gone_is_a_transport_error_then_lost() -> None:
    server = ModbusTcpSim(SimModbusBus([visiferm_do_sim()])).start()
    port = server.port
    server.stop()
    with ModbusBus(TcpEndpoint("127.0.0.1", port), POLICY) as bus:
        link = bus.device(1, "do")
        with pytest.raises(TransportError, match="cannot open"):
            link.read_registers(2089, 10)
        with pytest.raises(DeviceLost):
            link.read_registers(2089, 10)
