"""TEER meter driver for the project's own line protocol (docs/teer-protocol.md).

No public command set exists for the common TEER meters, so ChipTwin defines one:
ASCII lines ending in LF (CR LF accepted), one reply per request::

    *IDN?         -> <maker>,<model>,<serial>,<firmware>
    WELLS?        -> WELLS <well>,<well>,...
    MEAS? <well>  -> TEER <well> <ohm_cm2> <temp_c>
    (any error)   -> ERR <code> <text>       (DeviceRejected, code = "<code>")

Keep the driver swappable: anything with ``read() -> list[Measurement]`` is a Sensor; a
vendor meter gets its own driver with the same shape.

Temperature: TEER falls by roughly 1–2 %/°C as medium warms (electrolyte conductivity);
Raut et al. (Micromachines 2021, 12:282) needed a correction after each medium change.
``TemperatureCorrection`` reports, beside the raw value, TEER referred to ``reference_c``
with a linear coefficient — the default 0.02 /°C is *unconfirmed*: calibrate it on your
electrodes and medium.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from instruments.capabilities import Measurement
from instruments.connection import ConnectionState
from instruments.errors import ConfigError, DeviceRejected, WireProtocolError
from instruments.transport.base import ByteTransport

READING = re.compile(r"^TEER (\S+) (-?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?) (-?\d+(?:\.\d*)?)$")
ERROR = re.compile(r"^ERR (\d{3}) (.*)$")
WELL = re.compile(r"^[A-Za-z0-9_-]{1,8}$")
TEER_UNIT = "ohm * cm ** 2"


@dataclass(frozen=True)
class TemperatureCorrection:
    """TEER at ``reference_c`` = TEER × (1 + coefficient_per_c × (T − reference_c))."""

    reference_c: float = 37.0
    coefficient_per_c: float = 0.02  # *unconfirmed*

    def corrected_ohm_cm2(self, teer_ohm_cm2: float, temperature_c: float) -> float:
        return teer_ohm_cm2 * (1.0 + self.coefficient_per_c * (temperature_c - self.reference_c))


@dataclass(frozen=True)
class TeerReading:
    well: str
    teer_ohm_cm2: float
    temperature_c: float


def parse_line(frame: bytes) -> str:
    """Decode one reply line; ``ERR <code> <text>`` becomes DeviceRejected."""
    try:
        text = frame.decode("ascii").rstrip("\r\n")
    except UnicodeDecodeError:
        raise WireProtocolError(f"TEER reply {frame!r} is not ASCII") from None
    if (error := ERROR.match(text)) is not None:
        raise DeviceRejected(f"TEER meter error {error.group(1)}: {error.group(2)}", code=error.group(1))
    if not text:
        raise WireProtocolError("TEER meter sent an empty line")
    return text


class TeerMeter:
    """Reads the TEER of ``wells`` (e.g. ``["A1", "A2"]``); implements ``capabilities.Sensor``."""

    def __init__(
        self,
        transport: ByteTransport,
        wells: list[str],
        *,
        name: str = "teer",
        correction: TemperatureCorrection | None = None,
    ) -> None:
        for well in wells:
            if not WELL.match(well):
                raise ConfigError(f"{name}: well name {well!r} must be 1–8 letters, digits, '_' or '-'")
        self.transport = transport
        self.wells = list(wells)
        self.name = name
        self.correction = correction

    @property
    def connection_state(self) -> ConnectionState:
        return self.transport.connection_state

    def identity(self) -> str:
        return str(self.transport.query(b"*IDN?\n", parse_line))

    def close(self) -> None:
        self.transport.close()

    def device_wells(self) -> list[str]:
        text = str(self.transport.query(b"WELLS?\n", parse_line))
        if not text.startswith("WELLS "):
            raise WireProtocolError(f"{self.name}: expected 'WELLS …', got {text!r}")
        return text[6:].split(",")

    def measure(self, well: str) -> TeerReading:
        """One well: TEER in Ω·cm² (blank-subtracted, area-normalised by the meter) and °C."""
        if well not in self.wells:
            raise ConfigError(f"{self.name}: well {well!r} not configured (have {', '.join(self.wells)})")
        return self.transport.query(f"MEAS? {well}\n".encode("ascii"), lambda frame: _reading(parse_line(frame), well))

    def read(self) -> list[Measurement]:
        """Every configured well: ``teer.<well>`` (Ω·cm²), ``temperature.<well>`` (°C), and
        ``teer_corrected.<well>`` when a temperature correction is set."""
        measurements: list[Measurement] = []
        for well in self.wells:
            reading = self.measure(well)
            measurements.append(Measurement(f"teer.{well}", reading.teer_ohm_cm2, TEER_UNIT))
            measurements.append(Measurement(f"temperature.{well}", reading.temperature_c, "degC"))
            if self.correction is not None:
                value = self.correction.corrected_ohm_cm2(reading.teer_ohm_cm2, reading.temperature_c)
                measurements.append(Measurement(f"teer_corrected.{well}", value, TEER_UNIT))
        return measurements


def _reading(text: str, well: str) -> TeerReading:
    match = READING.match(text)
    if match is None or match.group(1) != well:
        raise WireProtocolError(f"TEER reply {text!r} is not 'TEER {well} <ohm_cm2> <temp_c>'")
    return TeerReading(well, float(match.group(2)), float(match.group(3)))
