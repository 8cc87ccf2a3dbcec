"""The poller over real Modbus simulators: one worker per bus, and a dead device on one bus
does not slow a sensor on another (it keeps its rate, with no missed slot)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from instruments.acquisition.poller import Channel, Poller, Reading, ReadingQuality, check_sequences
from instruments.clock import AcceleratedClock
from instruments.connection import RetryPolicy
from instruments.drivers.hamilton import VisiFermDO
from instruments.sim.faults import Fault, FaultPlan
from instruments.sim.modbus_devices import SimModbusBus, visiferm_do_sim
from instruments.sim.modbus_sim import ModbusTcpSim
from instruments.transport.modbus_link import ModbusBus, TcpEndpoint

RATE, T0 = 25.0, 1.8e9
POLICY = RetryPolicy(
    timeout_s=0.1,
    retries=1,
    backoff_initial_s=0.01,
    backoff_max_s=0.3,
    failures_until_reconnect=2,
    failures_until_lost=4,
)


@pytest.fixture(autouse=True)
def no_thread_leak() -> Iterator[None]:
    before = threading.active_count()
    yield
    assert threading.active_count() == before, "a poller, simulator or client thread was left running"


def test_dead_device_on_one_bus_does_not_slow_another_bus() -> None:
    clock = AcceleratedClock.starting_now(RATE, T0)
    plan = FaultPlan([Fault("dropout", "dead", at_s=0.0, duration_s=1e9)])
    received: list[Reading] = []
    now_s = lambda: clock.now_s() - T0  # noqa: E731
    with (
        ModbusTcpSim(SimModbusBus([visiferm_do_sim("good", 1, lambda t: 80.0)], plan, now_s)) as good_sim,
        ModbusTcpSim(SimModbusBus([visiferm_do_sim("dead", 1, lambda t: 80.0)], plan, now_s)) as dead_sim,
        ModbusBus(TcpEndpoint("127.0.0.1", good_sim.port), POLICY) as good_bus,
        ModbusBus(TcpEndpoint("127.0.0.1", dead_sim.port), POLICY) as dead_bus,
    ):
        good = VisiFermDO("good", good_bus.device(1, "good"))
        dead = VisiFermDO("dead", dead_bus.device(1, "dead"))
        channels = [
            Channel("good/o2", good, "oxygen_air_saturation", "percent", 2.0, (0.0, 200.0)),
            Channel("good/temp", good, "temperature", "degC", 2.0, (20.0, 45.0)),
            Channel("dead/o2", dead, "oxygen_air_saturation", "percent", 2.0, (0.0, 200.0)),
        ]
        with Poller(channels, received.extend, clock, batch_interval_s=0.2, start_utc_s=T0) as poller:
            time.sleep(2.0)  # 50 clock seconds: 25 slots of 80 ms real
        stats = poller.stats()
    assert stats.workers == 2
    good_o2 = [r for r in received if r.channel == "good/o2"]
    # every slot of the good bus read, none skipped (a busy machine may add slots after the 2 s)
    assert len(good_o2) >= 23 and stats.channels["good/o2"].missed_slots == 0
    assert [r.slot for r in good_o2] == list(range(len(good_o2)))
    assert all(r.quality == ReadingQuality.OK and r.value == 80.0 for r in good_o2)
    assert stats.channels["dead/o2"].readings == 0  # never answered: no value to repeat
    assert stats.channels["dead/o2"].errors == stats.channels["dead/o2"].errors_without_value > 0
    assert check_sequences(received, stats).ok


def test_sensors_sharing_a_bus_share_one_worker() -> None:
    clock = AcceleratedClock.starting_now(RATE, T0)
    received: list[Reading] = []
    sims = [visiferm_do_sim(f"do{i}", i, lambda t: 50.0) for i in (1, 2, 3)]
    with ModbusTcpSim(SimModbusBus(sims)) as sim, ModbusBus(TcpEndpoint("127.0.0.1", sim.port), POLICY) as bus:
        channels = [
            Channel(f"do{i}", VisiFermDO(f"do{i}", bus.device(i, f"do{i}")), "oxygen_air_saturation", "percent", 1.0)
            for i in (1, 2, 3)
        ]
        with Poller(channels, received.extend, clock) as poller:
            time.sleep(0.3)
        stats = poller.stats()
    assert stats.workers == 1
    assert all(stats.channels[f"do{i}"].readings >= 5 for i in (1, 2, 3))
    assert check_sequences(received, stats).ok
