"""TEER meter: byte-exact line protocol (docs/teer-protocol.md), then driver ↔ simulator on a pty."""

from __future__ import annotations

import pytest

from instruments.capabilities import Sensor
from instruments.connection import ConnectionState
from instruments.drivers.teer import TeerMeter, TemperatureCorrection
from instruments.errors import ConfigError, DeviceRejected, WireProtocolError
from instruments.sim.faults import Fault, FaultPlan
from instruments.sim.teer_sim import TeerSim
from instruments.transport.framing import TerminatorFraming
from instruments.transport.scripted import ScriptedTransport
from instruments.transport.serial_link import SerialLink
from tests.instruments.protocol_helpers import FAST, expected_protocol, no_leaks  # noqa: F401

LF = TerminatorFraming(b"\n")


def meter(wells=("A1", "A2"), **kwargs):
    return lambda transport: TeerMeter(transport, list(wells), **kwargs)


def test_read_byte_exact() -> None:
    exchanges = [
        (b"*IDN?\n", b"CHIPTWIN,TEER-SIM,0001,1.0\n"),
        (b"MEAS? A1\n", b"TEER A1 1234.5 36.80\n"),
        (b"MEAS? A2\n", b"TEER A2 987.0 37.00\r\n"),
    ]
    with expected_protocol(meter(), exchanges, LF) as teer:
        assert teer.identity() == "CHIPTWIN,TEER-SIM,0001,1.0"
        values = {(m.quantity, m.unit): m.value for m in teer.read()}
    assert values == {
        ("teer.A1", "ohm * cm ** 2"): 1234.5,
        ("temperature.A1", "degC"): 36.8,
        ("teer.A2", "ohm * cm ** 2"): 987.0,
        ("temperature.A2", "degC"): 37.0,
    }


def test_temperature_correction_adds_a_value() -> None:
    with expected_protocol(
        meter(["A1"], correction=TemperatureCorrection(37.0, 0.02)), [(b"MEAS? A1\n", b"TEER A1 1000.0 32.00\n")], LF
    ) as teer:
        corrected = [m for m in teer.read() if m.quantity == "teer_corrected.A1"]
    assert corrected[0].value == pytest.approx(900.0)  # 5 °C cooler reads 10 % high


@pytest.mark.parametrize(
    "reply, code",
    [(b"ERR 102 unknown well A1\n", "102"), (b"ERR 200 open circuit on A1: electrode not in medium\n", "200")],
)
def test_errors_are_rejections(reply: bytes, code: str) -> None:
    with expected_protocol(meter(["A1"]), [(b"MEAS? A1\n", reply)], LF) as teer:
        with pytest.raises(DeviceRejected) as caught:
            teer.measure("A1")
    assert caught.value.code == code


@pytest.mark.parametrize("reply", [b"TEER A2 1.0 37.0\n", b"TEER A1 abc 37.0\n", b"\xff\xff\n", b"\n"])
def test_bad_replies_are_protocol_errors(reply: bytes) -> None:
    with expected_protocol(meter(["A1"]), [(b"MEAS? A1\n", reply)], LF) as teer:
        with pytest.raises(WireProtocolError):
            teer.measure("A1")


def test_unconfigured_well_sends_nothing() -> None:
    transport = ScriptedTransport([])
    with pytest.raises(ConfigError):
        TeerMeter(transport, ["A1"]).measure("B7")
    with pytest.raises(ConfigError):
        TeerMeter(transport, ["A 1"])
    assert transport.sent == [] and isinstance(TeerMeter(transport, ["A1"]), Sensor)


@pytest.fixture
def plan() -> FaultPlan:
    return FaultPlan()


@pytest.fixture
def sim(plan: FaultPlan, no_leaks):
    lifted = {"A3"}
    with TeerSim(
        "teer", plan=plan, teer_ohm_cm2=lambda well, t: None if well in lifted else 1500.0, temperature_c=lambda t: 36.5
    ) as device:
        yield device


@pytest.fixture
def link(sim: TeerSim):
    link = SerialLink("teer", lambda: sim.path, LF, policy=FAST)
    yield link
    link.close()


def test_meter_over_pty(link: SerialLink) -> None:
    teer = TeerMeter(link, ["A1", "A2", "A3"])
    assert teer.device_wells() == ["A1", "A2", "A3", "A4"]
    assert teer.measure("A1").teer_ohm_cm2 == 1500.0 and teer.measure("A2").temperature_c == 36.5
    with pytest.raises(DeviceRejected, match="open circuit"):
        teer.measure("A3")
    assert link.query(b"FOO\n") == b"ERR 100 unknown command\n"


@pytest.mark.parametrize("kind", ["timeout", "dropout", "garbled", "truncated", "vanish"])
def test_faults_are_recovered(kind: str, link: SerialLink, plan: FaultPlan) -> None:
    teer = TeerMeter(link, ["A1"])
    assert teer.identity().startswith("CHIPTWIN")
    plan.add(Fault(kind, "teer", at_s=0.0))
    assert [m.value for m in teer.read()] == [1500.0, 36.5]
    assert len(plan.fired(kind)) == 1 and link.connection_state == ConnectionState.OK
