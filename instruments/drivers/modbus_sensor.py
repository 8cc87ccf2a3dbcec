"""A Modbus sensor described entirely by a register map (pressure, flow, temperature, …).

There is no standard register layout for industrial pressure/flow sensors, so the rig
file describes each point: name, quantity, zero-based address, type (uint16, int16,
uint32, int32, float32), ``value = raw × scale + offset``, unit (pint-parsable), word
order for 32-bit types, read function (3 holding / 4 input), and optionally a plausible
range (a value outside it is reported as a WireProtocolError — the usual symptom of a wrong
word order or scale). Maps are validated at construction; errors name the point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

import pint

from instruments.capabilities import Measurement
from instruments.connection import ConnectionState
from instruments.errors import ConfigError, WireProtocolError
from instruments.transport.modbus_codec import REGISTER_TYPES, WORD_ORDERS, decode, encode, register_count
from instruments.transport.modbus_link import ModbusDeviceLink
from twin.units import ureg

MAX_REGISTERS_PER_READ = 125  # Modbus limit for functions 3 and 4


@dataclass(frozen=True)
class RegisterPoint:
    name: str
    quantity: str
    address: int  # zero-based (manual "40001" → 0)
    type: str = "uint16"
    unit: str = "dimensionless"
    scale: float = 1.0
    offset: float = 0.0
    word_order: str = "high_word_first"
    function: int = 3
    plausible: tuple[float, float] | None = None

    @property
    def registers(self) -> range:
        return range(self.address, self.address + register_count(self.type))

    def value_from(self, raw_registers: list[int]) -> float:
        return decode(raw_registers, self.type, self.word_order) * self.scale + self.offset

    def registers_for(self, value: float) -> list[int]:
        """Inverse of ``value_from`` (the simulator serves values this way)."""
        return encode((value - self.offset) / self.scale, self.type, self.word_order)


def _check_point(point: RegisterPoint) -> None:
    where = f"register map point {point.name!r}"
    if point.type not in REGISTER_TYPES:
        raise ConfigError(f"{where}: unknown type {point.type!r}; use one of {', '.join(REGISTER_TYPES)}")
    if point.word_order not in WORD_ORDERS:
        raise ConfigError(f"{where}: word order {point.word_order!r} is not one of {', '.join(WORD_ORDERS)}")
    if point.function not in (3, 4):
        raise ConfigError(f"{where}: function must be 3 (holding) or 4 (input), not {point.function}")
    if not 0 <= point.address <= 0xFFFF - register_count(point.type) + 1:
        raise ConfigError(f"{where}: address {point.address} outside 0–65535 (zero-based)")
    if point.scale == 0 or not math.isfinite(point.scale) or not math.isfinite(point.offset):
        raise ConfigError(f"{where}: scale must be finite and non-zero, offset finite")
    try:
        ureg.Unit(point.unit)
    except (
        pint.errors.UndefinedUnitError,
        pint.errors.DefinitionSyntaxError,
        ValueError,
        TypeError,
        AttributeError,
        AssertionError,
    ):
        raise ConfigError(
            f"{where}: unit {point.unit!r} is not a unit pint understands (write e.g. 'kPa', 'uL/min', 'degC')"
        ) from None


class RegisterMap:
    """A validated list of points; raises ConfigError naming the offending point."""

    def __init__(self, points: Iterable[RegisterPoint]) -> None:
        self.points = list(points)
        if not self.points:
            raise ConfigError("a register map needs at least one point")
        names: set[str] = set()
        for point in self.points:
            if point.name in names:
                raise ConfigError(f"register map point {point.name!r} appears twice")
            names.add(point.name)
            _check_point(point)
        self._check_overlaps()

    @classmethod
    def from_dicts(cls, rows: Iterable[dict[str, Any]]) -> RegisterMap:
        """Build from rig-file rows (``plausible`` may be a two-item list)."""
        points = []
        for row in rows:
            row = dict(row)
            if row.get("plausible") is not None:
                row["plausible"] = tuple(row["plausible"])
            try:
                points.append(RegisterPoint(**row))
            except TypeError as exc:
                raise ConfigError(f"register map point {row.get('name', '?')!r}: {exc}") from None
        return cls(points)

    def _check_overlaps(self) -> None:
        owner: dict[tuple[int, int], str] = {}
        for point in self.points:
            for register in point.registers:
                key = (point.function, register)
                if key in owner:
                    raise ConfigError(
                        f"register map point {point.name!r} overlaps point {owner[key]!r} "
                        f"at register {register} (function {point.function})"
                    )
                owner[key] = point.name

    def read_spans(self) -> list[tuple[int, int, int]]:
        """Contiguous (function, address, count) reads covering every point, ≤125 registers each."""
        spans: list[list[int]] = []
        for point in sorted(self.points, key=lambda p: (p.function, p.address)):
            count = register_count(point.type)
            last = spans[-1] if spans else None
            if (
                last
                and last[0] == point.function
                and last[1] + last[2] == point.address
                and last[2] + count <= MAX_REGISTERS_PER_READ
            ):
                last[2] += count
            else:
                spans.append([point.function, point.address, count])
        return [(f, a, c) for f, a, c in spans]


class ModbusRegisterSensor:
    """A Sensor whose every point comes from a RegisterMap; one read per contiguous span."""

    model = "Modbus register-map sensor"

    def __init__(self, name: str, link: ModbusDeviceLink, register_map: RegisterMap) -> None:
        self.name, self.link, self.register_map = name, link, register_map
        self.closed = False

    def identity(self) -> str:
        return f"{self.model} unit {self.link.unit_id} on {self.link.bus.name}"

    @property
    def connection_state(self) -> ConnectionState:
        return self.link.state

    def read(self) -> list[Measurement]:
        image: dict[tuple[int, int], int] = {}
        for function, address, count in self.register_map.read_spans():
            for offset, word in enumerate(self.link.read_registers(address, count, function)):
                image[(function, address + offset)] = word
        return [self._measure(point, image) for point in self.register_map.points]

    def _measure(self, point: RegisterPoint, image: dict[tuple[int, int], int]) -> Measurement:
        value = point.value_from([image[(point.function, r)] for r in point.registers])
        low, high = point.plausible or (-math.inf, math.inf)
        if not (math.isfinite(value) and low <= value <= high):
            raise WireProtocolError(
                f"{self.name}: point {point.name!r} read {value!r} {point.unit}, outside "
                f"the plausible {low}–{high}; check its word_order, type and scale"
            )
        return Measurement(point.quantity, value, point.unit)

    def close(self) -> None:
        self.closed = True


# Hach LDO (RTU 19200 8N1): 40001 = mg/L × 1000 (uint16), 40002 = °C × 100.
# *Unconfirmed*: temperature signedness (int16 assumed, to allow < 0 °C) and function 3.
HACH_LDO_MAP = RegisterMap(
    [
        RegisterPoint("dissolved_oxygen", "dissolved_oxygen", 0, "uint16", "mg/L", scale=0.001),
        RegisterPoint("temperature", "temperature", 1, "int16", "degC", scale=0.01),
    ]
)
