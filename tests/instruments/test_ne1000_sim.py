"""NE-1000 driver ↔ simulator over real ptys: behaviours of the manual, every serial fault."""

from __future__ import annotations

import time

import pytest

from instruments.connection import ConnectionState
from instruments.drivers.limits import ChipLimits
from instruments.drivers.ne1000 import NE1000
from instruments.errors import DeviceAlarm, DeviceRejected, SetpointOutOfRange, WireProtocolError
from instruments.sim.faults import Fault, FaultPlan
from instruments.sim.ne1000_sim import NE1000Sim
from instruments.transport.framing import StxEtxFraming
from instruments.transport.serial_link import SerialLink, SerialSettings
from tests.instruments.protocol_helpers import FAST, no_leaks  # noqa: F401
from twin.units import Q_

pytestmark = pytest.mark.usefixtures("no_leaks")


class ManualClock:
    """Simulated seconds, advanced by the test (an accelerated clock)."""

    def __init__(self) -> None:
        self.t_s = 1000.0

    def __call__(self) -> float:
        return self.t_s


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def plan() -> FaultPlan:
    return FaultPlan()


@pytest.fixture
def doses() -> list[tuple[float, float]]:
    return []


@pytest.fixture
def sim(plan: FaultPlan, clock: ManualClock, doses: list):
    with NE1000Sim("pump1", plan=plan, now_s=clock, on_dispense=lambda ml, rate: doses.append((ml, rate))) as device:
        yield device


@pytest.fixture
def link(sim: NE1000Sim):
    link = SerialLink("pump1", lambda: sim.path, StxEtxFraming(), settings=SerialSettings(baudrate=19200), policy=FAST)
    yield link
    link.close()


@pytest.fixture
def pump(link: SerialLink) -> NE1000:
    pump = NE1000(link, name="pump1")
    pump.set_diameter(4.699)  # 1 mL syringe: µL volumes
    return pump


def advance(sim: NE1000Sim, clock: ManualClock, seconds: float) -> None:
    """Advance simulated time; the sim integrates it on its next tick (within one poll)."""
    with sim.lock:
        clock.t_s += seconds
    time.sleep(0.05)


def test_dispense_accumulates_with_simulated_time(
    pump: NE1000, sim: NE1000Sim, clock: ManualClock, doses: list
) -> None:
    pump.dispense(Q_(50, "uL"), Q_(10, "uL/min"))
    assert pump.is_running()
    advance(sim, clock, 60.0)
    assert pump.dispensed().m_as("uL") == pytest.approx(10, rel=1e-3)
    advance(sim, clock, 600.0)  # target reached: the pump stops at 50 µL
    assert not pump.is_running() and pump.status() == "S"
    assert pump.dispensed() == Q_(50, "uL")
    assert sum(ml for ml, _ in doses) == pytest.approx(0.050)
    assert doses[0][1] == pytest.approx(0.010)  # mL/min
    pump.clear_dispensed()
    assert pump.dispensed() == Q_(0, "uL")


def test_rate_change_while_pumping_keeps_units(pump: NE1000, sim: NE1000Sim) -> None:
    pump.set_volume(Q_(0, "uL"))
    pump.set_rate(Q_(10, "uL/min"))  # 600.0 µL/h
    pump.start()
    pump.set_rate(Q_(100, "uL/min"))  # 6000 µL/h, same units: accepted while pumping
    assert sim.state.rate == 6000 and sim.state.rate_units == "UH"
    with pytest.raises(DeviceRejected) as caught:
        pump.command("RAT", "0.500MM")  # unit change while pumping
    assert caught.value.code == "?NA"


def test_direction_change_while_pumping_only_with_volume_zero(pump: NE1000, sim: NE1000Sim) -> None:
    pump.dispense(Q_(50, "uL"), Q_(10, "uL/min"))
    with pytest.raises(DeviceRejected, match="NA"):
        pump.set_direction("WDR")
    pump.stop()
    pump.set_volume(Q_(0, "uL"))
    pump.start()
    pump.set_direction("WDR")
    assert pump.status() == "W"


def test_power_loss_alarm_keeps_settings_but_not_a_rate_changed_while_pumping(
    pump: NE1000, sim: NE1000Sim, plan: FaultPlan
) -> None:
    pump.set_rate(Q_(10, "uL/min"))
    pump.start()
    pump.set_rate(Q_(20, "uL/min"))
    plan.add(Fault("pump_alarm", "pump1", at_s=0.0, params={"alarm": "R"}))
    with pytest.raises(DeviceAlarm) as caught:
        pump.status()
    assert caught.value.code == "R" and plan.fired("pump_alarm")
    assert pump.status() == "S"  # acknowledged; pumping stopped
    assert pump.command("RAT").data == "600.0UH" and pump.diameter_mm == 4.699
    assert pump.command("DIA").data == "4.699"


def test_stall_alarm_refuses_the_command_then_is_acknowledged(pump: NE1000, sim: NE1000Sim, plan: FaultPlan) -> None:
    pump.set_rate(Q_(10, "uL/min"))
    pump.start()
    plan.add(Fault("pump_alarm", "pump1", at_s=0.0, params={"alarm": "S"}))
    with pytest.raises(DeviceAlarm, match="stalled"):
        pump.set_volume(Q_(5, "uL"))
    assert sim.state.volume_target == 0.0 and not pump.is_running()
    assert pump.connection_state == ConnectionState.OK


@pytest.mark.parametrize("kind", ["timeout", "garbled", "truncated"])
def test_basic_mode_faults_are_retried(kind: str, pump: NE1000, plan: FaultPlan) -> None:
    plan.add(Fault(kind, "pump1", at_s=0.0))
    assert pump.identity() == "NE1000V3.928"
    assert len(plan.fired(kind)) == 1 and pump.connection_state == ConnectionState.OK


@pytest.mark.parametrize("kind", ["crc_error", "garbled", "truncated"])
def test_safe_mode_faults_are_retried(kind: str, pump: NE1000, plan: FaultPlan, sim: NE1000Sim) -> None:
    pump.enable_safe_mode(30)
    plan.add(Fault(kind, "pump1", at_s=0.0))
    assert pump.identity() == "NE1000V3.928"
    assert len(plan.fired(kind)) == 1 and sim.requests[-1][:1] == b"\x02"


def test_crc_error_every_time_gives_protocol_error(pump: NE1000, plan: FaultPlan, clock: ManualClock) -> None:
    pump.enable_safe_mode(30)
    plan.add(Fault("crc_error", "pump1", at_s=clock.t_s, duration_s=5.0))
    with pytest.raises(WireProtocolError, match="CRC"):
        pump.identity()
    assert len(plan.fired("crc_error")) == 3  # 1 + 2 retries


def test_safe_mode_host_silence_raises_alarm_t(pump: NE1000, sim: NE1000Sim, clock: ManualClock) -> None:
    pump.enable_safe_mode(10)
    pump.set_rate(Q_(10, "uL/min"))
    pump.start()
    advance(sim, clock, 11.0)
    with pytest.raises(DeviceAlarm) as caught:
        pump.status()
    assert caught.value.code == "T" and pump.status() == "S"


def test_vanish_is_refound_and_state_survives(pump: NE1000, sim: NE1000Sim, plan: FaultPlan, link) -> None:
    pump.set_rate(Q_(10, "uL/min"))
    old_path = sim.path
    plan.add(Fault("vanish", "pump1", at_s=0.0))
    assert pump.command("RAT").data == "600.0UH"
    assert link.port == sim.path != old_path
    assert plan.fired("vanish")[0].t_s == 1000.0


def test_out_of_range_setpoint_sends_no_bytes(link: SerialLink, sim: NE1000Sim) -> None:
    pump = NE1000(link, syringe_diameter_mm=4.699, chip_limits=ChipLimits(max_rate=Q_(5, "uL/min")))
    with pytest.raises(SetpointOutOfRange, match="chip"):
        pump.dispense(Q_(10, "uL"), Q_(6, "uL/min"))
    time.sleep(0.02)
    assert sim.requests == []


def test_sim_rejects_out_of_range_itself(pump: NE1000) -> None:
    with pytest.raises(DeviceRejected) as caught:
        pump.command("RAT", "9999MM")
    assert caught.value.code == "?OOR"
    with pytest.raises(DeviceRejected) as caught:
        pump.command("XYZ")
    assert caught.value.code == "?"
