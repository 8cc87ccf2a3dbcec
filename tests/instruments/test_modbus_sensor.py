"""Generic register-map sensor: map validation (named errors) and reads over TCP / RTU."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from instruments.capabilities import Sensor
from instruments.connection import RetryPolicy
from instruments.drivers.modbus_sensor import HACH_LDO_MAP, ModbusRegisterSensor, RegisterMap, RegisterPoint
from instruments.errors import ConfigError, DeviceRejected, WireProtocolError
from instruments.sim.faults import Fault, FaultPlan
from instruments.sim.modbus_devices import RegisterMapSim, SimModbusBus
from instruments.sim.modbus_sim import ModbusRtuSim, ModbusTcpSim
from instruments.transport.modbus_link import ModbusBus, RtuLine, TcpEndpoint

POLICY = RetryPolicy(timeout_s=0.2, retries=0, backoff_initial_s=0.01, backoff_max_s=0.3)


@pytest.fixture(autouse=True)
def no_thread_leak() -> Iterator[None]:
    before = threading.active_count()
    yield
    assert threading.active_count() == before, "a simulator or client thread was left running"


def rig_map(pressure_order: str = "low_word_first") -> RegisterMap:
    return RegisterMap.from_dicts(
        [
            {
                "name": "inlet_pressure",
                "quantity": "pressure",
                "address": 100,
                "type": "float32",
                "unit": "kPa",
                "word_order": pressure_order,
                "plausible": [-10, 500],
            },
            {
                "name": "flow",
                "quantity": "flow_rate",
                "address": 102,
                "type": "int32",
                "unit": "uL/min",
                "scale": 0.01,
                "word_order": "high_word_first",
            },
            {
                "name": "temperature",
                "quantity": "temperature",
                "address": 7,
                "type": "int16",
                "unit": "degC",
                "scale": 0.1,
                "offset": 0.0,
                "function": 4,
            },
        ]
    )


@pytest.mark.parametrize(
    "bad, message",
    [
        (
            {"name": "p", "quantity": "pressure", "address": 0, "type": "float64", "unit": "kPa"},
            "'p': unknown type 'float64'",
        ),
        (
            {"name": "p", "quantity": "pressure", "address": 0, "type": "float32", "unit": "kiloPascalz"},
            "'p': unit 'kiloPascalz' is not a unit pint understands",
        ),
        ({"name": "p", "quantity": "pressure", "address": 0, "unit": "kPa", "function": 6}, "'p': function must be 3"),
        ({"name": "p", "quantity": "pressure", "address": 0, "unit": "kPa", "word_order": "mixed"}, "'p': word order"),
        ({"name": "p", "quantity": "pressure", "address": 0, "unit": "kPa", "scale": 0}, "'p': scale"),
        ({"name": "p", "quantity": "pressure", "address": 0, "unit": "kPa", "colour": "red"}, "'p': "),
    ],
)
def test_bad_points_are_refused_naming_the_point(bad: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        RegisterMap.from_dicts([bad])


def test_overlapping_registers_are_refused_naming_both_points() -> None:
    with pytest.raises(ConfigError, match="'flow' overlaps point 'pressure' at register 11"):
        RegisterMap(
            [
                RegisterPoint("pressure", "pressure", 10, "float32", "kPa"),
                RegisterPoint("flow", "flow_rate", 11, "uint16", "uL/min"),
            ]
        )
    # the same address in the input-register table is a different register
    RegisterMap(
        [
            RegisterPoint("pressure", "pressure", 10, "float32", "kPa"),
            RegisterPoint("flow", "flow_rate", 11, "uint16", "uL/min", function=4),
        ]
    )


def test_reads_are_grouped_into_contiguous_spans() -> None:
    assert rig_map().read_spans() == [(3, 100, 4), (4, 7, 1)]


@pytest.mark.parametrize("order", ["low_word_first", "high_word_first"])
def test_generic_sensor_over_tcp_in_both_word_orders(order: str) -> None:
    device = RegisterMapSim(
        "fluidics",
        5,
        rig_map(order),
        {"inlet_pressure": lambda t: 123.5, "flow": lambda t: -12.34, "temperature": lambda t: -3.2},
    )
    with ModbusTcpSim(SimModbusBus([device])) as sim, ModbusBus(TcpEndpoint("127.0.0.1", sim.port), POLICY) as bus:
        sensor = ModbusRegisterSensor("fluidics", bus.device(5, "fluidics"), rig_map(order))
        assert isinstance(sensor, Sensor)
        readings = {m.quantity: (m.value, m.unit) for m in sensor.read()}
    assert readings["pressure"] == (123.5, "kPa")
    assert readings["flow_rate"][0] == pytest.approx(-12.34) and readings["flow_rate"][1] == "uL/min"
    assert readings["temperature"][0] == pytest.approx(-3.2)


def test_word_order_fault_shows_as_implausible_value_then_recovers() -> None:
    plan = FaultPlan([Fault("word_order", "fluidics", at_s=0.0)])
    device = RegisterMapSim(
        "fluidics",
        5,
        rig_map(),
        {  # 123.45 kPa swapped reads ≈ −2.7e23
            "inlet_pressure": lambda t: 123.45,
            "flow": lambda t: 1.0,
            "temperature": lambda t: 20.0,
        },
    )
    with (
        ModbusTcpSim(SimModbusBus([device], plan)) as sim,
        ModbusBus(TcpEndpoint("127.0.0.1", sim.port), POLICY) as bus,
    ):
        sensor = ModbusRegisterSensor("fluidics", bus.device(5, "fluidics"), rig_map())
        with pytest.raises(WireProtocolError, match="inlet_pressure.*word_order"):
            sensor.read()
        assert sensor.read()[0].value == pytest.approx(123.45)
    assert len(plan.fired("word_order")) == 1


def test_unmapped_register_read_gets_illegal_address() -> None:
    device = RegisterMapSim(
        "fluidics", 5, rig_map(), {"inlet_pressure": lambda t: 1.0, "flow": lambda t: 1.0, "temperature": lambda t: 1.0}
    )
    with ModbusTcpSim(SimModbusBus([device])) as sim, ModbusBus(TcpEndpoint("127.0.0.1", sim.port), POLICY) as bus:
        with pytest.raises(DeviceRejected) as refused:
            bus.device(5, "fluidics").read_registers(99, 2)
    assert refused.value.code == "2"


def test_hach_ldo_map_over_rtu() -> None:
    device = RegisterMapSim(
        "ldo", 1, HACH_LDO_MAP, {"dissolved_oxygen": lambda t: 8.123, "temperature": lambda t: 21.5}
    )
    with (
        ModbusRtuSim(SimModbusBus([device]), stopbits=1) as sim,
        ModbusBus(RtuLine(sim.port, stopbits=1), POLICY) as bus,
    ):
        link = bus.device(1, "ldo")
        assert link.read_registers(0, 2) == [8123, 2150]  # 40001 = mg/L × 1000, 40002 = °C × 100
        do, temperature = ModbusRegisterSensor("ldo", link, HACH_LDO_MAP).read()
    assert (do.value, do.unit) == (pytest.approx(8.123), "mg/L")
    assert (temperature.value, temperature.unit) == (pytest.approx(21.5), "degC")
