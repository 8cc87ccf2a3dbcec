"""Reglo ICC: byte-exact exchanges, then driver ↔ simulator over a real pty with faults."""

from __future__ import annotations

import time

import pytest

from instruments.capabilities import Pump
from instruments.connection import ConnectionState
from instruments.drivers.limits import ChipLimits
from instruments.drivers.reglo_icc import RegloICC, decode_flow, encode_flow
from instruments.errors import ConfigError, DeviceRejected, SetpointOutOfRange, WireProtocolError
from instruments.sim.faults import Fault, FaultPlan
from instruments.sim.reglo_sim import RegloSim
from instruments.transport.framing import TerminatorFraming
from instruments.transport.scripted import ScriptedTransport
from instruments.transport.serial_link import SerialLink
from tests.instruments.protocol_helpers import FAST, expected_protocol, no_leaks  # noqa: F401
from twin.units import Q_


def reglo(**kwargs):
    return lambda transport: RegloICC(transport, **kwargs)


# -- byte-exact ------------------------------------------------------------------------
def test_flow_number_format() -> None:
    assert encode_flow(0.1) == "1000E-1" and encode_flow(0.1, with_e=False) == "1000-1"
    assert encode_flow(12.5) == "1250E+1" and encode_flow(1.0) == "1000E+0"
    assert decode_flow("1000E-1") == pytest.approx(0.1) and decode_flow("9876-3") == pytest.approx(0.009876)
    with pytest.raises(WireProtocolError):
        decode_flow("10E-1")


def test_commands_byte_exact() -> None:
    exchanges = [
        (b"1B\r", b"*"),
        (b"1J\r", b"*"),
        (b"1L\r", b"*"),
        (b"1S009876\r", b"*"),
        (b"1M\r", b"*"),
        (b"1f1000E-1\r", b"*"),
        (b"1H\r", b"*"),
        (b"1E\r", b"+"),
        (b"1:\r", b"4.983 ml\r\n"),
        (b"1W\r", b"*"),
        (b"1I\r", b"*"),
        (b"1E\r", b"-"),
        (b"1f\r", b"1000E-1\r\n"),
        (b"1#\r", b"REGLO ICC 0208 306\r\n"),
    ]
    with expected_protocol(reglo(), exchanges) as pump:
        pump.set_remote(True)
        pump.set_direction(clockwise=True)
        pump.set_speed_rpm(98.76)
        pump.set_rate(Q_(100, "uL/min"))
        pump.start()
        assert pump.is_running()
        assert pump.dispensed() == Q_(4.983, "mL")
        pump.reset_dispensed()
        pump.stop()
        assert not pump.is_running()
        assert pump.flow_rate().m_as("mL/min") == pytest.approx(0.1)
        assert pump.identity() == "REGLO ICC 0208 306"


def test_channel_and_numat_format() -> None:
    with expected_protocol(reglo(channel=3, flow_format="mmmmse"), [(b"3M\r", b"*"), (b"3f2500-2\r", b"*")]) as p:
        p.set_rate(Q_(0.025, "mL/min"))


def test_not_executed_is_rejected_and_xe_explains() -> None:
    with expected_protocol(reglo(), [(b"1H\r", b"#"), (b"1xe\r", b"no flow rate set\r\n")]) as pump:
        with pytest.raises(DeviceRejected) as caught:
            pump.start()
        assert caught.value.code == "#"
        assert pump.why_not_running() == "no flow rate set"


@pytest.mark.parametrize("reply", [b"?", b"\xff"])
def test_unexpected_ack_is_protocol_error(reply: bytes) -> None:
    with expected_protocol(reglo(), [(b"1I\r", reply)]) as pump:
        with pytest.raises(WireProtocolError):
            pump.stop()


@pytest.mark.parametrize(
    "call",
    [
        lambda p: p.set_rate(Q_(50, "mL/min")),  # above the tubing's 35 mL/min
        lambda p: p.set_rate(Q_(2, "mL/min")),  # above the chip's 1 mL/min
        lambda p: p.set_rate(Q_(1, "mL")),  # not a rate
        lambda p: p.set_speed_rpm(150.0),
        lambda p: p.dispense(Q_(10, "mL"), Q_(0.5, "mL/min")),  # above the chip's 5 mL
    ],
)
def test_setpoints_out_of_range_send_nothing(call) -> None:
    transport = ScriptedTransport([])
    with pytest.raises(SetpointOutOfRange):
        call(RegloICC(transport, chip_limits=ChipLimits(max_rate=Q_(1, "mL/min"), max_volume=Q_(5, "mL"))))
    assert transport.sent == []


def test_is_a_pump_and_checks_channel() -> None:
    assert isinstance(RegloICC(ScriptedTransport([])), Pump)
    with pytest.raises(ConfigError):
        RegloICC(ScriptedTransport([]), channel=9)


# -- over a pty ------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.t_s = 0.0

    def __call__(self) -> float:
        return self.t_s


@pytest.fixture
def plan() -> FaultPlan:
    return FaultPlan()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim(plan: FaultPlan, clock: Clock, no_leaks):
    with RegloSim("reglo", plan=plan, now_s=clock) as device:
        yield device


@pytest.fixture
def link(sim: RegloSim):
    link = SerialLink("reglo", lambda: sim.path, TerminatorFraming(b"\r\n"), policy=FAST)
    yield link
    link.close()


def test_flow_and_total_volume_over_pty(link: SerialLink, sim: RegloSim, clock: Clock) -> None:
    pump = RegloICC(link, channel=2)
    pump.set_rate(Q_(0.5, "mL/min"))
    pump.start()
    assert pump.is_running() and not sim.channels[1].running and sim.channels[2].running
    with sim.lock:
        clock.t_s += 120.0
    time.sleep(0.05)
    assert pump.dispensed().m_as("mL") == pytest.approx(1.0)
    pump.stop()
    pump.reset_dispensed()
    assert pump.dispensed() == Q_(0, "mL")


def test_dispense_volume_at_rate_stops_by_itself(link: SerialLink, sim: RegloSim, clock: Clock) -> None:
    pump = RegloICC(link)
    pump.dispense(Q_(0.2, "mL"), Q_(1, "mL/min"))
    with sim.lock:
        clock.t_s += 60.0
    time.sleep(0.05)
    assert not pump.is_running() and pump.dispensed().m_as("mL") == pytest.approx(0.2)


@pytest.mark.parametrize("kind", ["timeout", "garbled", "truncated", "vanish"])
def test_faults_are_recovered(kind: str, link: SerialLink, sim: RegloSim, plan: FaultPlan) -> None:
    pump = RegloICC(link)
    assert pump.identity().startswith("REGLO")
    plan.add(Fault(kind, "reglo", at_s=0.0))
    assert pump.dispensed() == Q_(0, "mL")
    assert len(plan.fired(kind)) == 1 and link.connection_state == ConnectionState.OK


def test_stalled_motor_refuses_start_and_xe_says_why(link: SerialLink, plan: FaultPlan) -> None:
    pump = RegloICC(link)
    pump.set_rate(Q_(1, "mL/min"))
    plan.add(Fault("pump_alarm", "reglo", at_s=0.0, params={"alarm": "S"}))
    with pytest.raises(DeviceRejected):
        pump.start()
    assert pump.why_not_running() == "motor blocked"
    pump.start()
    assert pump.is_running()
