"""Hamilton VisiFerm DO / pH Arc: block decoding (both word orders, status bits) and the
driver against the simulator over real TCP and RTU on a pty."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from instruments.capabilities import Sensor
from instruments.connection import ConnectionState, RetryPolicy
from instruments.drivers.hamilton import (
    PRIMARY_BLOCK_ADDRESS,
    HamiltonBlock,
    PhArc,
    VisiFermDO,
    decode_block,
    encode_block,
    status_flags,
)
from instruments.errors import DeviceRejected, WireProtocolError
from instruments.sim.modbus_devices import SimModbusBus, SimSignal, ph_arc_sim, visiferm_do_sim
from instruments.sim.modbus_sim import ModbusRtuSim, ModbusTcpSim
from instruments.transport.modbus_link import ModbusBus, RtuLine, TcpEndpoint

POLICY = RetryPolicy(timeout_s=0.2, retries=0, backoff_initial_s=0.01, backoff_max_s=0.3)

# the manual's example block: unit 0x04 (°C), 24.358, status 0, −20, 130 — low word first
MANUAL_EXAMPLE_LOW_WORD_FIRST = [0x0004, 0x0000, 0xDD2F, 0x41C2, 0x0000, 0x0000, 0x0000, 0xC1A0, 0x0000, 0x4302]


@pytest.fixture(autouse=True)
def no_thread_leak() -> Iterator[None]:
    before = threading.active_count()
    yield
    assert threading.active_count() == before, "a simulator or client thread was left running"


def test_manual_example_block_decodes_low_word_first() -> None:
    block = decode_block(MANUAL_EXAMPLE_LOW_WORD_FIRST, "low_word_first")
    assert (block.unit_code, block.unit.unit, block.status) == (0x04, "degC", 0)
    assert block.value == pytest.approx(24.358, rel=1e-6)
    assert (block.minimum, block.maximum) == (-20.0, 130.0)


def test_same_block_high_word_first_and_misconfigured_order_is_detected() -> None:
    high = encode_block(HamiltonBlock(0x04, 24.358, 0, -20.0, 130.0), "high_word_first")
    assert high == [0x0000, 0x0004, 0x41C2, 0xDD2F, 0x0000, 0x0000, 0xC1A0, 0x0000, 0x4302, 0x0000]
    assert decode_block(high, "high_word_first").value == pytest.approx(24.358, rel=1e-6)
    with pytest.raises(WireProtocolError, match="word_order"):
        decode_block(high, "low_word_first")


def test_status_bits_become_named_flags() -> None:
    assert status_flags(0) == []
    assert status_flags(0x01 | 0x08) == ["temperature_out_of_measuring_range", "warning"]
    assert status_flags(0x1F) == [
        "temperature_out_of_measuring_range",
        "out_of_operating_range",
        "calibration_status",
        "warning",
        "error",
    ]


@pytest.mark.parametrize("word_order", ["low_word_first", "high_word_first"])
def test_visiferm_over_tcp_reads_value_temperature_and_status(word_order: str) -> None:
    device = visiferm_do_sim(
        value_source=lambda t: 42.5, word_order=word_order, temperature=lambda t: 36.6, status=lambda t: 0x10 | 0x04
    )
    with ModbusTcpSim(SimModbusBus([device])) as sim, ModbusBus(TcpEndpoint("127.0.0.1", sim.port), POLICY) as bus:
        sensor = VisiFermDO("do", bus.device(1, "do"), word_order=word_order)
        assert isinstance(sensor, Sensor)
        o2, temperature = sensor.read()
    assert (o2.quantity, o2.unit, o2.value, o2.status) == ("oxygen_air_saturation", "percent", 42.5, 0x14)
    assert status_flags(o2.status) == ["calibration_status", "error"]
    assert temperature.unit == "degC" and temperature.value == pytest.approx(36.6, rel=1e-6)
    assert sensor.connection_state is ConnectionState.OK


def test_visiferm_mg_per_l_and_ph_arc_share_one_rtu_line_with_function_4() -> None:
    devices = [
        visiferm_do_sim(unit_id=1, value_source=lambda t: 7.25, unit="mg/L"),
        ph_arc_sim(unit_id=2, value_source=lambda t: 7.0),
    ]
    with ModbusRtuSim(SimModbusBus(devices)) as sim, ModbusBus(RtuLine(sim.port), POLICY) as bus:
        do = VisiFermDO("do", bus.device(1, "do"), function=4)
        ph = PhArc("ph", bus.device(2, "ph"))
        assert do.read()[0] == do.read()[0]  # stable
        do_value, ph_value = do.read()[0], ph.read()[0]
    assert (do_value.quantity, do_value.unit, do_value.value) == ("dissolved_oxygen", "mg/L", 7.25)
    assert (ph_value.quantity, ph_value.unit, ph_value.value) == ("pH", "dimensionless", 7.0)


def test_partial_block_read_gets_the_devices_exception_reply() -> None:
    with (
        ModbusTcpSim(SimModbusBus([visiferm_do_sim()])) as sim,
        ModbusBus(TcpEndpoint("127.0.0.1", sim.port), POLICY) as bus,
    ):
        link = bus.device(1, "do")
        with pytest.raises(DeviceRejected) as refused:
            link.read_registers(PRIMARY_BLOCK_ADDRESS, 4)
        assert refused.value.code == "2"  # illegal data address
        assert link.state is ConnectionState.OK  # it answered: the link is healthy


def test_driver_configured_with_the_wrong_word_order_fails_loudly() -> None:
    with (
        ModbusTcpSim(SimModbusBus([visiferm_do_sim(word_order="low_word_first")])) as sim,
        ModbusBus(TcpEndpoint("127.0.0.1", sim.port), POLICY) as bus,
    ):
        sensor = VisiFermDO("do", bus.device(1, "do"), word_order="high_word_first")
        with pytest.raises(WireProtocolError, match="word_order"):
            sensor.read()


def test_value_source_with_drift_and_seeded_noise_reaches_the_driver() -> None:
    clock_s = [3600.0]
    signal = SimSignal(lambda t: 90.0, noise_sd=0.5, drift_per_h=-2.0, seed=7)
    expected = SimSignal(lambda t: 90.0, noise_sd=0.5, drift_per_h=-2.0, seed=7)(3600.0)
    bus_sim = SimModbusBus([visiferm_do_sim(value_source=signal)], now_s=lambda: clock_s[0])
    with ModbusTcpSim(bus_sim) as sim, ModbusBus(TcpEndpoint("127.0.0.1", sim.port), POLICY) as bus:
        value = VisiFermDO("do", bus.device(1, "do")).read()[0].value
    assert value == pytest.approx(expected, rel=1e-6) and 86.0 < value < 90.0  # 88 ± noise
