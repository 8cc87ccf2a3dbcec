"""Hamilton VisiFerm DO and pH Arc sensors over Modbus RTU [ODOUM043; EPHUM011 §2.5].

Both sensors expose 10-register "primary measurement channel" blocks; the driver always
reads a whole block (partial reads are refused by the device) with function 3 (or 4):

    offset 0–1 unit code (uint32)   2–3 value (float32)   4–5 status (uint32)
    offset 6–7 minimum (float32)    8–9 maximum (float32)

Primary measurement (O2 or pH): manual register 2090 → zero-based 2089.
Temperature: manual register 2410 → zero-based 2409.

*Unconfirmed* (make configurable, say so): the word order of 32-bit values (default
``"low_word_first"``, as a community Mycodo driver reads them; mbpoll's default order), the
line settings (19200 8N2), the device address register 4096 (default 1), and most unit
codes — only 0x04 = °C is in the manual excerpt we have; the others are bit-coded after a
community driver's table (bit n → n-th unit) and are marked unconfirmed in UNIT_CODES.
A wrong word order is *detected*: the unit code then decodes to an unknown code or to a
unit this sensor cannot report (bit-coded units make 0x20 ↔ 0x00200000 collide, so the
driver checks the unit against the sensor kind), and the read fails with a WireProtocolError
that names ``word_order``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from instruments.capabilities import Measurement
from instruments.connection import ConnectionState
from instruments.errors import ConfigError, WireProtocolError
from instruments.transport.modbus_codec import check_word_order, decode, encode
from instruments.transport.modbus_link import ModbusDeviceLink

PRIMARY_BLOCK_ADDRESS = 2089  # manual 2090, counted from 1
TEMPERATURE_BLOCK_ADDRESS = 2409  # manual 2410, counted from 1
BLOCK_REGISTERS = 10

# status bits of a block
STATUS_TEMPERATURE_OUT_OF_MEASURING_RANGE = 0x01
STATUS_OUT_OF_OPERATING_RANGE = 0x02
STATUS_CALIBRATION = 0x04
STATUS_WARNING = 0x08
STATUS_ERROR = 0x10
STATUS_FLAGS = {
    STATUS_TEMPERATURE_OUT_OF_MEASURING_RANGE: "temperature_out_of_measuring_range",
    STATUS_OUT_OF_OPERATING_RANGE: "out_of_operating_range",
    STATUS_CALIBRATION: "calibration_status",
    STATUS_WARNING: "warning",
    STATUS_ERROR: "error",
}


@dataclass(frozen=True)
class HamiltonUnit:
    code: int
    unit: str  # pint-parsable
    label: str  # as the manual writes it
    confirmed: bool


UNIT_CODES: dict[int, HamiltonUnit] = {
    u.code: u
    for u in (
        HamiltonUnit(0x00000002, "kelvin", "K", False),
        HamiltonUnit(0x00000004, "degC", "°C", True),  # manual example: unit 0x04 (°C)
        HamiltonUnit(0x00000008, "degF", "°F", False),
        HamiltonUnit(0x00000010, "percent", "%-vol", False),
        HamiltonUnit(0x00000020, "percent", "%-sat (air saturation)", False),
        HamiltonUnit(0x00000040, "ug/L", "µg/L (ppb)", False),
        HamiltonUnit(0x00000080, "mg/L", "mg/L (ppm)", False),
        HamiltonUnit(0x00000100, "g/L", "g/L", False),
        HamiltonUnit(0x00001000, "dimensionless", "pH", False),
        HamiltonUnit(0x00200000, "mV", "mV", False),
        HamiltonUnit(0x00800000, "mbar", "mbar", False),
    )
}
UNIT_CODE_BY_LABEL = {
    "degC": 0x04,
    "%-sat": 0x20,
    "%-vol": 0x10,
    "mg/L": 0x80,
    "ppm": 0x80,
    "ug/L": 0x40,
    "ppb": 0x40,
    "pH": 0x1000,
    "K": 0x02,
}

# the quantity a DO sensor's primary value means depends on its unit
_DO_QUANTITY = {
    0x10: "oxygen_volume_fraction",
    0x20: "oxygen_air_saturation",
    0x40: "dissolved_oxygen",
    0x80: "dissolved_oxygen",
    0x100: "dissolved_oxygen",
}


@dataclass(frozen=True)
class HamiltonBlock:
    """One decoded 10-register block."""

    unit_code: int
    value: float
    status: int
    minimum: float
    maximum: float

    @property
    def unit(self) -> HamiltonUnit:
        return UNIT_CODES[self.unit_code]


def status_flags(status: int) -> list[str]:
    """Names of the status bits set (upstream turns them into quality flags)."""
    return [name for bit, name in STATUS_FLAGS.items() if status & bit]


def decode_block(registers: list[int], word_order: str = "low_word_first") -> HamiltonBlock:
    """Decode a block; WireProtocolError if its unit code is unknown (often a wrong word order)."""
    if len(registers) != BLOCK_REGISTERS:
        raise WireProtocolError(f"a Hamilton block has {BLOCK_REGISTERS} registers, got {len(registers)}")
    words = [registers[i : i + 2] for i in range(0, BLOCK_REGISTERS, 2)]
    block = HamiltonBlock(
        int(decode(words[0], "uint32", word_order)),
        decode(words[1], "float32", word_order),
        int(decode(words[2], "uint32", word_order)),
        decode(words[3], "float32", word_order),
        decode(words[4], "float32", word_order),
    )
    if block.unit_code not in UNIT_CODES:
        raise WireProtocolError(
            f"unit code 0x{block.unit_code:08X} is not a known Hamilton unit; if the "
            f"sensor is fine, its word order is probably not {word_order!r} (check word_order)"
        )
    if not math.isfinite(block.value):
        raise WireProtocolError(f"value {block.value} is not finite (check word_order)")
    return block


def encode_block(block: HamiltonBlock, word_order: str = "low_word_first") -> list[int]:
    """The 10 registers of ``block`` (used by the simulator and byte-level tests)."""
    return (
        encode(block.unit_code, "uint32", word_order)
        + encode(block.value, "float32", word_order)
        + encode(block.status, "uint32", word_order)
        + encode(block.minimum, "float32", word_order)
        + encode(block.maximum, "float32", word_order)
    )


class HamiltonArcSensor:
    """A Hamilton Arc sensor: primary block + temperature block; implements ``Sensor``.

    ``close()`` only retires this driver; the shared bus is closed by its owner.
    """

    model = "Hamilton Arc"

    def __init__(
        self, name: str, link: ModbusDeviceLink, *, word_order: str = "low_word_first", function: int = 3
    ) -> None:
        check_word_order(word_order)
        if function not in (3, 4):
            raise ConfigError(f"{name}: read function must be 3 or 4, not {function}")
        self.name, self.link, self.word_order, self.function = name, link, word_order, function
        self.closed = False

    def identity(self) -> str:
        return f"{self.model} unit {self.link.unit_id} on {self.link.bus.name}"

    @property
    def connection_state(self) -> ConnectionState:
        return self.link.state

    primary_unit_codes: frozenset[int] = frozenset()
    temperature_unit_codes = frozenset({0x02, 0x04, 0x08})

    def read_block(self, address: int, expected_unit_codes: frozenset[int]) -> HamiltonBlock:
        """Read and decode one block; a unit this block cannot have means a wrong word order."""

        def plausible(registers: list[int]) -> None:
            block = decode_block(registers, self.word_order)
            if block.unit_code not in expected_unit_codes:
                raise WireProtocolError(
                    f"{self.name}: block {address} reports unit {block.unit.label}, which this "
                    f"sensor does not measure; check word_order (now {self.word_order!r})"
                )

        # checked inside the link's retries: a stale reply (another block's) is read again
        return decode_block(
            self.link.read_registers(address, BLOCK_REGISTERS, self.function, plausible), self.word_order
        )

    def primary_quantity(self, block: HamiltonBlock) -> str:
        raise NotImplementedError

    def read(self) -> list[Measurement]:
        """Primary value and temperature, each with its block's status bits."""
        primary = self.read_block(PRIMARY_BLOCK_ADDRESS, self.primary_unit_codes)
        temperature = self.read_block(TEMPERATURE_BLOCK_ADDRESS, self.temperature_unit_codes)
        return [
            Measurement(self.primary_quantity(primary), primary.value, primary.unit.unit, primary.status),
            Measurement("temperature", temperature.value, temperature.unit.unit, temperature.status),
        ]

    def close(self) -> None:
        self.closed = True


class VisiFermDO(HamiltonArcSensor):
    """VisiFerm DO Arc: quantity follows the configured unit (%-sat, %-vol, mg/L, µg/L)."""

    model = "Hamilton VisiFerm DO Arc"
    primary_unit_codes = frozenset(_DO_QUANTITY)

    def primary_quantity(self, block: HamiltonBlock) -> str:
        return _DO_QUANTITY.get(block.unit_code, "dissolved_oxygen")


class PhArc(HamiltonArcSensor):
    """pH Arc: primary value is pH (dimensionless)."""

    model = "Hamilton pH Arc"
    primary_unit_codes = frozenset({0x1000})

    def primary_quantity(self, block: HamiltonBlock) -> str:
        return "pH"
