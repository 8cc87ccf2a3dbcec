"""Every Modbus fault kind, injected by the FaultPlan into the simulator over real TCP and
RTU-on-pty: the driver sees the right error from instruments.errors, the plan log records
the fault with its time, and the next read succeeds."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from instruments.connection import ConnectionState, RetryPolicy
from instruments.drivers.hamilton import VisiFermDO
from instruments.errors import DeviceRejected, DeviceTimeout, InstrumentError, WireProtocolError
from instruments.sim.faults import Fault, FaultPlan
from instruments.sim.modbus_devices import SimModbusBus, visiferm_do_sim
from instruments.sim.modbus_sim import ModbusRtuSim, ModbusTcpSim
from instruments.transport.modbus_link import ModbusBus, RtuLine, TcpEndpoint

NO_RETRY = RetryPolicy(timeout_s=0.15, retries=0, backoff_initial_s=0.01, backoff_max_s=0.3)


class ManualClock:
    def __init__(self) -> None:
        self.t_s = 0.0

    def __call__(self) -> float:
        return self.t_s


@pytest.fixture(autouse=True)
def no_thread_leak() -> Iterator[None]:
    before = threading.active_count()
    yield
    assert threading.active_count() == before, "a simulator or client thread was left running"


@contextmanager
def rig(transport: str, plan: FaultPlan, clock: ManualClock, policy: RetryPolicy = NO_RETRY) -> Iterator[VisiFermDO]:
    sim_bus = SimModbusBus([visiferm_do_sim(value_source=lambda t: 55.0)], plan=plan, now_s=clock)
    server = ModbusTcpSim(sim_bus) if transport == "tcp" else ModbusRtuSim(sim_bus)
    with server:
        endpoint = TcpEndpoint("127.0.0.1", server.port) if transport == "tcp" else RtuLine(server.port)
        with ModbusBus(endpoint, policy) as bus:
            yield VisiFermDO("visiferm", bus.device(1, "visiferm"))


EXPECTED: dict[str, type[InstrumentError]] = {
    "timeout": DeviceTimeout,
    "modbus_exception": DeviceRejected,
    "word_order": WireProtocolError,  # detected by the driver: unit code decodes to nonsense
    "garbled": WireProtocolError,
    "crc_error": WireProtocolError,
    "truncated": WireProtocolError,
}


@pytest.mark.parametrize("transport", ["tcp", "rtu"])
@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_one_shot_fault_is_seen_logged_and_recovered(transport: str, kind: str) -> None:
    clock, plan = ManualClock(), FaultPlan()
    with rig(transport, plan, clock) as sensor:
        assert sensor.read()[0].value == 55.0
        clock.t_s = 10.0
        plan.add(Fault(kind, "visiferm", at_s=10.0, params={"code": 6} if kind == "modbus_exception" else {}))
        with pytest.raises(EXPECTED[kind]) as error:
            sensor.read()
        if kind == "modbus_exception":
            assert error.value.code == "6"
        clock.t_s = 11.0
        assert sensor.read()[0].value == 55.0
        assert sensor.connection_state is ConnectionState.OK
    fired = plan.fired(kind, "visiferm")
    assert len(fired) == 1 and fired[0].t_s == 10.0


@pytest.mark.parametrize("transport", ["tcp", "rtu"])
def test_dropout_stops_answering_then_returns(transport: str) -> None:
    clock, plan = ManualClock(), FaultPlan([Fault("dropout", "visiferm", at_s=5.0, duration_s=10.0)])
    with rig(transport, plan, clock) as sensor:
        assert sensor.read()[0].value == 55.0
        clock.t_s = 6.0
        for _ in range(2):
            with pytest.raises(DeviceTimeout):
                sensor.read()
        assert sensor.connection_state is ConnectionState.DEGRADED
        clock.t_s = 16.0  # dropout over
        assert sensor.read()[0].value == 55.0
        assert sensor.connection_state is ConnectionState.OK
    assert [f.t_s for f in plan.fired("dropout")] == [6.0, 6.0]


@pytest.mark.parametrize("transport", ["tcp", "rtu"])
def test_bounded_retry_hides_a_single_garbled_reply(transport: str) -> None:
    clock, plan = ManualClock(), FaultPlan([Fault("garbled", "visiferm", at_s=0.0)])
    policy = RetryPolicy(timeout_s=0.15, retries=1, backoff_initial_s=0.01, backoff_max_s=0.3)
    with rig(transport, plan, clock, policy) as sensor:
        assert sensor.read()[0].value == 55.0  # first attempt garbled, retry succeeds
        assert sensor.link.health.consecutive_failures == 0
    assert len(plan.fired("garbled")) == 1


def test_rtu_byte_timing_is_enforced_at_the_configured_baud_rate() -> None:
    import time

    sim_bus = SimModbusBus([visiferm_do_sim()])
    with (
        ModbusRtuSim(sim_bus, baudrate=9600, parity="N", stopbits=2, enforce_timing=True) as sim,
        ModbusBus(RtuLine(sim.port, baudrate=9600), NO_RETRY) as bus,
    ):
        link = bus.device(1, "visiferm")
        link.read_registers(2089, 10)
        started = time.monotonic()
        for _ in range(3):
            link.read_registers(2089, 10)
        per_read_s = (time.monotonic() - started) / 3
    # request 8 chars + 3.5 gap + reply 25 chars, 11 bits per char at 9600 baud ≈ 41.8 ms
    assert per_read_s >= (8 + 3.5 + 25) * 11 / 9600 * 0.95


def test_a_stale_reply_that_fails_the_content_check_is_read_again() -> None:
    """On RTU a reply that came after its request timed out answers the next one (same unit and length):
    the driver's content check rejects it inside the link's retries, and the fresh reply is used."""
    from instruments.connection import ConnectionState, RetryPolicy
    from instruments.errors import WireProtocolError
    from instruments.transport.modbus_link import ModbusDeviceLink

    class Bus:
        policy = RetryPolicy(timeout_s=0.1, retries=1, backoff_initial_s=0.0, backoff_max_s=0.0)
        replies = [[7] * 10, [1] * 10]  # first another block's registers, then this block's

        def read_once(self, unit: int, function: int, address: int, count: int) -> list[int]:
            return self.replies.pop(0)

    def this_block(registers: list[int]) -> None:
        if registers[0] != 1:
            raise WireProtocolError("block 2409 reports another block's unit")

    link = ModbusDeviceLink(Bus(), 1, "do", sleep=lambda _s: None)  # type: ignore[arg-type]
    assert link.read_registers(2409, 10, check=this_block) == [1] * 10
    assert link.state is ConnectionState.OK and Bus.replies == []
