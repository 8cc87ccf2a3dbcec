"""One-hour accelerated soak: 1 simulated hour at 360× (≈ 10 s real).

Simulated Modbus sensors on a TCP gateway (three unit ids on one connection) and on an
RS-485 line emulated on a pty with 19,200-baud byte timing, polled by the acquisition
poller while a seeded FaultPlan injects timeouts, exception replies, dropouts, garbled
frames and CRC errors at random moments. At the end: every reading produced reached the
sink exactly once (contiguous ``seq`` per channel), every scheduled fault is in the plan
log, and every device is back to OK with a good last reading.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Iterator

import pytest

from instruments.acquisition.poller import Channel, Poller, Reading, check_sequences
from instruments.clock import AcceleratedClock
from instruments.connection import ConnectionState, RetryPolicy
from instruments.drivers.hamilton import VisiFermDO
from instruments.drivers.modbus_sensor import HACH_LDO_MAP, ModbusRegisterSensor, RegisterMap, RegisterPoint
from instruments.sim.faults import Fault, FaultPlan
from instruments.sim.modbus_devices import RegisterMapSim, SimModbusBus, visiferm_do_sim
from instruments.sim.modbus_sim import ModbusRtuSim, ModbusTcpSim
from instruments.transport.modbus_link import ModbusBus, RtuLine, TcpEndpoint

RATE = 360.0  # 1 simulated hour ≈ 10 s real
SOAK_S = 3600.0  # clock seconds
T0 = 1.8e9
POLICY = RetryPolicy(
    timeout_s=0.08,
    retries=1,
    backoff_initial_s=0.01,
    backoff_max_s=0.4,
    failures_until_reconnect=3,
    failures_until_lost=6,
)
PRESSURE_MAP = RegisterMap(
    [
        RegisterPoint("pressure", "pressure", 0, "float32", "kPa", plausible=(-50.0, 500.0)),
        RegisterPoint("flow", "flow_rate", 2, "int16", "uL/min", scale=0.1),
    ]
)
FAULT_KINDS = ("timeout", "modbus_exception", "dropout", "garbled", "crc_error")
DEVICES = ("do_1", "do_2", "pressure", "do_rtu", "ldo_rtu")


@pytest.fixture(autouse=True)
def no_thread_leak() -> Iterator[None]:
    before = threading.active_count()
    yield
    assert threading.active_count() == before, "a poller, simulator or client thread was left running"


def wave(mean: float, amplitude: float, period_s: float):
    return lambda t_s: mean + amplitude * math.sin(2 * math.pi * t_s / period_s)


def fault_plan(seed: int, n_faults: int = 24) -> FaultPlan:
    """Random kinds on random devices at random moments in [120, 3000] s; dropouts last 150–300 s (longer than
    the slowest channel's period, so a poll sees each).

    Faults on one device keep ≥ 150 s apart (after a dropout ends): the simulator serves
    one fault per request, and a one-shot fault that comes due inside a dropout would be
    used up by the silent request without being logged.
    """
    rng = random.Random(seed)
    faults: list[Fault] = []
    while len(faults) < n_faults:
        kind, device = rng.choice(FAULT_KINDS), rng.choice(DEVICES)
        duration_s = rng.uniform(150.0, 300.0) if kind == "dropout" else 0.0
        params = {"code": rng.choice([4, 6])} if kind == "modbus_exception" else {}
        fault = Fault(kind, device, round(rng.uniform(120.0, 3000.0), 1), duration_s, params)
        if all(_apart(fault, other) for other in faults if other.device == device):
            faults.append(fault)
    return FaultPlan(faults)


def _apart(a: Fault, b: Fault, gap_s: float = 150.0) -> bool:
    first, second = sorted((a, b), key=lambda f: f.at_s)
    return second.at_s >= first.at_s + first.duration_s + gap_s


def tcp_devices() -> list:
    return [
        visiferm_do_sim("do_1", 1, wave(90.0, 5.0, 900.0)),
        visiferm_do_sim("do_2", 2, wave(70.0, 8.0, 600.0)),
        RegisterMapSim(
            "pressure", 3, PRESSURE_MAP, {"pressure": wave(12.0, 2.0, 300.0), "flow": wave(20.0, 1.0, 120.0)}
        ),
    ]


def rtu_devices() -> list:
    return [
        visiferm_do_sim("do_rtu", 1, wave(80.0, 4.0, 1200.0)),
        RegisterMapSim(
            "ldo_rtu",
            2,
            HACH_LDO_MAP,
            {"dissolved_oxygen": wave(7.0, 0.5, 1800.0), "temperature": wave(37.0, 0.2, 3600.0)},
        ),
    ]


def soak_channels(tcp: ModbusBus, rtu: ModbusBus) -> list[Channel]:
    do_1, do_2 = VisiFermDO("do_1", tcp.device(1, "do_1")), VisiFermDO("do_2", tcp.device(2, "do_2"))
    pressure = ModbusRegisterSensor("pressure", tcp.device(3, "pressure"), PRESSURE_MAP)
    do_rtu = VisiFermDO("do_rtu", rtu.device(1, "do_rtu"))
    ldo = ModbusRegisterSensor("ldo_rtu", rtu.device(2, "ldo_rtu"), HACH_LDO_MAP)
    return [
        Channel("chip1/o2", do_1, "oxygen_air_saturation", "percent", 10.0, (0.0, 200.0)),
        Channel("chip1/temp", do_1, "temperature", "degC", 10.0, (20.0, 45.0)),
        Channel("chip2/o2", do_2, "oxygen_air_saturation", "percent", 10.0, (0.0, 200.0)),
        Channel("chip2/temp", do_2, "temperature", "degC", 30.0, (20.0, 45.0)),
        Channel("chip1/pressure", pressure, "pressure", "kPa", 5.0, (0.0, 100.0)),
        Channel("chip1/flow", pressure, "flow_rate", "uL/min", 5.0, (0.0, 50.0)),
        Channel("chip3/o2", do_rtu, "oxygen_air_saturation", "percent", 60.0, (0.0, 200.0)),
        Channel("chip3/temp", do_rtu, "temperature", "degC", 60.0, (20.0, 45.0)),
        Channel("chip4/do", ldo, "dissolved_oxygen", "mg/L", 60.0, (0.0, 20.0)),
    ]


class Sink:
    def __init__(self) -> None:
        self.readings: list[Reading] = []

    def __call__(self, batch: list[Reading]) -> None:
        self.readings.extend(batch)


def test_one_hour_accelerated_soak_with_random_faults() -> None:
    clock = AcceleratedClock.starting_now(RATE, T0)
    plan, sink = fault_plan(seed=20240611), Sink()

    def sim_now_s() -> float:
        return clock.now_s() - T0

    with (
        ModbusTcpSim(SimModbusBus(tcp_devices(), plan, sim_now_s)) as tcp_sim,
        ModbusRtuSim(SimModbusBus(rtu_devices(), plan, sim_now_s), baudrate=19200, enforce_timing=True) as rtu_sim,
        ModbusBus(TcpEndpoint("127.0.0.1", tcp_sim.port), POLICY, name="gateway") as tcp,
        ModbusBus(RtuLine(rtu_sim.port, baudrate=19200), POLICY, name="rs485") as rtu,
    ):
        channels = soak_channels(tcp, rtu)
        poller = Poller(channels, sink, clock, batch_readings=200, batch_interval_s=0.5, start_utc_s=T0)
        with poller:
            time.sleep(max(0.0, (T0 + SOAK_S - clock.now_s()) / RATE))
        stopped_s = clock.now_s() - T0  # a loaded machine stops the poller a little after SOAK_S
        stats = poller.stats()
        states = {c.sensor.name: c.sensor.connection_state for c in channels}

    report = check_sequences(sink.readings, stats)
    assert report.ok, report.problems
    assert report.lost == report.duplicated == 0
    assert sum(report.received.values()) == stats.produced == stats.sink.delivered

    fired = [f.fault for f in plan.log]
    never = [f for f in plan._pending if f not in fired]
    assert not never, f"faults that never fired: {never}"
    # a single timeout or garbled reply is hidden by the link's retry; these are not
    faulty_devices = {f.device for f in plan._pending if f.kind in ("dropout", "modbus_exception")}
    for channel in channels:
        channel_stats = stats.channels[channel.name]
        polls_and_missed = channel_stats.polls + channel_stats.missed_slots
        # every slot of the time the poller ran is a poll or a counted miss (± 3 at the edges)
        assert SOAK_S / channel.period_s - 3 <= polls_and_missed <= stopped_s / channel.period_s + 3, (
            channel.name,
            stopped_s,
            vars(channel_stats),
        )
        if channel.sensor.name in faulty_devices:
            assert channel_stats.errors > 0, f"{channel.name}: its device's dropout/exception was not seen"
        last = [r for r in sink.readings if r.channel == channel.name][-1]
        assert last.quality == 0 and last.t_utc_s > T0 + SOAK_S - 4 * channel.period_s - 60, (channel.name, last)
    assert all(state is ConnectionState.OK for state in states.values()), states
