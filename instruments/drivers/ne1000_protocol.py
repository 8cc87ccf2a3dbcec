"""NE-1000 / NE-500 wire format, shared by the driver and its simulator.

From the NE-1000 manual (Pub. 1200-01 §10.2–10.3) as summarised in INSTRUMENTS.md.
Points marked *unconfirmed* are readings of the manual not checked on hardware:

- CRC: CRC-16-CCITT in its XModem form (poly 0x1021, init ``CRC_INIT`` = 0x0000, no
  reflection, no final XOR), over the data bytes only. *Unconfirmed*: the init value
  (0xFFFF would be CCITT-FALSE) and which bytes are covered.
- Safe-mode length byte counts the length byte, data, two CRC bytes and ETX, i.e.
  ``len(data) + SAFE_LENGTH_EXTRA`` (*unconfirmed*).
- The address is sent as two digits (``00RUN``); the pump also accepts one digit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from instruments.errors import DeviceAlarm, DeviceRejected, WireProtocolError
from instruments.transport.framing import ETX, STX, LengthPrefixedStxFraming, TerminatorFraming

CRC_POLY = 0x1021
CRC_INIT = 0x0000  # *unconfirmed* (XModem reading); 0xFFFF would be CCITT-FALSE
SAFE_LENGTH_EXTRA = 4  # *unconfirmed*: length byte + CRC hi + CRC lo + ETX

STATUS = {
    "I": "infusing",
    "W": "withdrawing",
    "S": "stopped",
    "P": "paused",
    "T": "pause phase",
    "U": "user wait",
    "X": "purging",
}
PUMPING = frozenset("IWX")
ALARMS = {
    "R": "pump was reset (power interrupted); settings persisted, pumping stopped",
    "S": "motor stalled (syringe at its end, or blocked)",
    "T": "safe-mode communication timeout: the host stopped talking",
    "E": "program error",
    "O": "program phase out of range",
}
ERRORS = {
    "": "unknown command",
    "NA": "command not applicable now",
    "OOR": "value out of range",
    "COM": "invalid communications packet",
    "IGN": "command ignored",
}

# Rate units: code -> factor to µL/min.
RATE_UNITS_UL_MIN = {"UM": 1.0, "MM": 1000.0, "UH": 1.0 / 60.0, "MH": 1000.0 / 60.0}
MAX_NUMBER = 9999.0  # four digits
MIN_NUMBER = 0.001

DIAMETER_MIN_MM, DIAMETER_MAX_MM = 0.1, 50.0
UL_VOLUME_MAX_DIAMETER_MM = 14.0  # volume in µL when DIA <= 14 mm, else mL
# Plunger speed range derived from the spec sheet (0.73 µL/h on a 1 mL BD syringe, 4.699 mm;
# 1529 mL/h on a 60 mL BD syringe, 26.59 mm). *Unconfirmed*: check on your pump.
PLUNGER_SPEED_MIN_MM_H = 0.0421
PLUNGER_SPEED_MAX_MM_H = 2753.0


def crc16_ccitt(data: bytes, init: int = CRC_INIT) -> int:
    """CRC-16-CCITT, MSB first; with init 0 this is XModem (``b"123456789"`` → 0x31C3)."""
    crc = init
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ CRC_POLY) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def encode_safe(data: bytes) -> bytes:
    crc = crc16_ccitt(data)
    return bytes([STX, len(data) + SAFE_LENGTH_EXTRA]) + data + bytes([crc >> 8, crc & 0xFF, ETX])


def decode_safe(frame: bytes) -> bytes:
    """The data of a safe-mode frame; WireProtocolError on a bad length, CRC or ETX."""
    if len(frame) < 5 or frame[0] != STX or frame[-1] != ETX or frame[1] != len(frame) - 1:
        raise WireProtocolError(f"malformed safe-mode frame {frame!r}")
    data, crc = frame[2:-3], (frame[-3] << 8) | frame[-2]
    if crc16_ccitt(data) != crc:
        raise WireProtocolError(
            f"safe-mode CRC mismatch in {frame!r}: got 0x{crc:04X}, computed 0x{crc16_ccitt(data):04X}"
        )
    return data


def safe_framing() -> LengthPrefixedStxFraming:
    return LengthPrefixedStxFraming(SAFE_LENGTH_EXTRA)


class RequestFraming:
    """What the pump reads: a safe-mode packet (starts with STX) or a CR-terminated command."""

    def __init__(self) -> None:
        self._safe, self._basic = safe_framing(), TerminatorFraming(b"\r")

    def extract(self, buffer: bytearray) -> bytes | None:
        if buffer[:1] == bytes([STX]):
            return self._safe.extract(buffer)
        return self._basic.extract(buffer)


def format_number(value: float) -> str | None:
    """At most four digits plus a point (``26.59``, ``1.500``, ``1000``); None if impossible."""
    if not math.isfinite(value) or value < MIN_NUMBER or value > MAX_NUMBER + 0.5:
        return None
    for decimals in (3, 2, 1, 0):
        text = f"{value:.{decimals}f}"
        if len(text.replace(".", "")) <= 4:
            return text
    return None


def display_step(value: float) -> float:
    """The step of a four-digit display at ``value``: 0.001 below 10, 0.01 below 100, 0.1 below
    1000, 1 from 1000 on (a 1 mL syringe's µL counter reads to 1 µL once it passes 1,000 µL)."""
    text = format_number(max(value, MIN_NUMBER)) or f"{MAX_NUMBER:.0f}"
    decimals = len(text.split(".")[1]) if "." in text else 0
    return 10.0**-decimals


def volume_units(diameter_mm: float) -> str:
    """``UL`` when the syringe diameter is ≤ 14 mm, else ``ML`` (NE-1000 rule)."""
    return "UL" if diameter_mm <= UL_VOLUME_MAX_DIAMETER_MM else "ML"


def rate_limits_ul_min(diameter_mm: float) -> tuple[float, float]:
    """(min, max) pumping rate in µL/min for a syringe of this inner diameter."""
    area_mm2 = math.pi * diameter_mm**2 / 4.0
    return PLUNGER_SPEED_MIN_MM_H * area_mm2 / 60.0, PLUNGER_SPEED_MAX_MM_H * area_mm2 / 60.0


@dataclass(frozen=True)
class Reply:
    address: int
    status: str
    data: str


def parse_basic(frame: bytes) -> Reply:
    """Parse STX, address (2 digits), status, data, ETX; raise alarms and errors."""
    if len(frame) < 5 or frame[0] != STX or frame[-1] != ETX:
        raise WireProtocolError(f"NE-1000 reply {frame!r} is not STX…ETX")
    return parse_body(frame[1:-1])


def parse_body(body: bytes) -> Reply:
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise WireProtocolError(f"NE-1000 reply {body!r} is not ASCII") from None
    if len(text) < 3 or not text[:2].isdigit() or text[2] not in STATUS and text[2] != "A":
        raise WireProtocolError(f"NE-1000 reply {body!r}: expected 2-digit address and a status character")
    address, status, data = int(text[:2]), text[2], text[3:]
    if status == "A" and data.startswith("?") and len(data) == 2 and data[1] in ALARMS:
        raise DeviceAlarm(
            f"NE-1000 #{address} alarm {data[1]}: {ALARMS[data[1]]}; the next command acknowledges it", code=data[1]
        )
    if status == "A":
        raise WireProtocolError(f"NE-1000 reply {body!r}: unknown alarm")
    if data.startswith("?"):
        code = data[1:]
        if code not in ERRORS:
            raise WireProtocolError(f"NE-1000 reply {body!r}: unknown error code {code!r}")
        raise DeviceRejected(f"NE-1000 #{address} refused the command: ?{code} ({ERRORS[code]})", code=f"?{code}")
    return Reply(address, status, data)
