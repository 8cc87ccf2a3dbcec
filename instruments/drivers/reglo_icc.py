"""Ismatec Reglo ICC peristaltic pump, one channel (address 1–8) per driver object.

Wire format (Reglo ICC manual, serial command section; numat/ismatec driver):
``<channel><command>[argument]\\r``. Replies: ``*`` done, ``#`` not executed
(DeviceRejected; ``xe`` says why), ``+``/``-`` for yes/no queries (single bytes, no
terminator); value queries end with CR LF. 9600 8N1 by default (*unconfirmed*: the
device can be reconfigured; pass other ``SerialSettings`` to the link).

Flow rates are written as a 4-digit mantissa and a signed exponent, value =
mantissa / 1000 × 10^exponent mL/min (numat/ismatec ``float_to_mmmmse``): 0.1 mL/min →
``1000E-1``. *Unconfirmed*: whether the ``E`` is sent (INSTRUMENTS.md shows
``f1000E-1``; numat omits it) — ``flow_format`` selects ``"mmmmEse"`` or ``"mmmmse"``.
Also *unconfirmed*: ``#`` (pump identity line), ``O``/``v`` (volume-at-rate mode and its
volume in mL, used by ``dispense``) and the ``xe`` text.
"""

from __future__ import annotations

import re
from typing import Any, Callable

import pint

from instruments.connection import ConnectionState
from instruments.drivers.limits import ChipLimits, check_chip, check_range, magnitude
from instruments.errors import ConfigError, DeviceRejected, SetpointOutOfRange, WireProtocolError
from instruments.transport.base import ByteTransport
from instruments.transport.framing import SingleByteFraming, TerminatorFraming
from twin.units import Q_

FLOW_VALUE = re.compile(r"^(\d{4})E?([+-]\d)$")
TOTAL_VOLUME = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*(ml|ul|µl)\s*$", re.IGNORECASE)


def encode_flow(value_ml_min: float, with_e: bool = True) -> str:
    """``0.1`` → ``1000E-1`` (mantissa/1000 × 10^exp); SetpointOutOfRange if not expressible."""
    mantissa_text, exponent_text = f"{value_ml_min:.3e}".split("e")
    exponent = int(exponent_text)
    if value_ml_min <= 0 or not -9 <= exponent <= 9:
        raise SetpointOutOfRange(f"flow {value_ml_min} mL/min cannot be written as mmmm×10^e")
    return f"{mantissa_text.replace('.', '')}{'E' if with_e else ''}{exponent:+d}"


def decode_flow(text: str) -> float:
    match = FLOW_VALUE.match(text.strip())
    if match is None:
        raise WireProtocolError(f"Reglo flow value {text!r} is not mmmm[E]±e")
    return int(match.group(1)) / 1000.0 * 10 ** int(match.group(2))


class RegloICC:
    """One Reglo ICC channel; implements ``capabilities.Pump``.

    ``max_flow`` is the device's limit for the fitted tubing (default 35 mL/min,
    *unconfirmed*: read it off the pump for your tubing); ``max_speed_rpm`` 100 rpm.
    """

    def __init__(
        self,
        transport: ByteTransport,
        *,
        channel: int = 1,
        name: str = "reglo",
        max_flow: pint.Quantity = Q_(35.0, "mL/min"),
        max_speed_rpm: float = 100.0,
        chip_limits: ChipLimits | None = None,
        flow_format: str = "mmmmEse",
    ) -> None:
        if not 1 <= channel <= 8:
            raise ConfigError(f"Reglo ICC channel {channel} outside 1–8")
        if flow_format not in ("mmmmEse", "mmmmse"):
            raise ConfigError(f"flow_format {flow_format!r}: use 'mmmmEse' or 'mmmmse'")
        self.transport = transport
        self.name = name
        self.channel = channel
        self.max_flow_ml_min = magnitude(max_flow, "mL/min", "Reglo max flow")
        self.max_speed_rpm = max_speed_rpm
        self.chip_limits = chip_limits or ChipLimits()
        self._flow_with_e = flow_format == "mmmmEse"
        self._total_step = Q_(0.001, "mL")  # until a ``:`` reply shows the display's own step
        self._ack_framing, self._line_framing = SingleByteFraming(), TerminatorFraming(b"\r\n")

    # -- Device -------------------------------------------------------------------------
    @property
    def connection_state(self) -> ConnectionState:
        return self.transport.connection_state

    def identity(self) -> str:
        return self._line("#")

    def close(self) -> None:
        self.transport.close()

    # -- wire ---------------------------------------------------------------------------
    def _request(self, command: str) -> bytes:
        return f"{self.channel}{command}\r".encode("ascii")

    def _ack(self, command: str) -> None:
        """A command answered by ``*`` (done) or ``#`` (not executed)."""
        self.transport.query(self._request(command), self._parse_ack, framing=self._ack_framing)

    def _parse_ack(self, frame: bytes) -> None:
        if frame == b"#":
            raise DeviceRejected(
                f"{self.name}: channel {self.channel} did not execute the command (#); "
                "why_not_running() asks the pump why",
                code="#",
            )
        if frame != b"*":
            raise WireProtocolError(f"{self.name}: expected '*' or '#', got {frame!r}")

    def _flag(self, command: str) -> bool:
        return bool(self.transport.query(self._request(command), _parse_flag, framing=self._ack_framing))

    def _line(self, command: str, convert: Callable[[str], Any] = str) -> Any:
        """A value query answered by a CR LF line; ``convert`` raising WireProtocolError lets the link retry."""
        return self.transport.query(
            self._request(command), lambda frame: convert(_parse_line(frame)), framing=self._line_framing
        )

    # -- settings -----------------------------------------------------------------------
    def set_remote(self, remote: bool = True) -> None:
        """``B`` remote control (front panel locked) / ``A`` local."""
        self._ack("B" if remote else "A")

    def set_direction(self, clockwise: bool = True) -> None:
        self._ack("J" if clockwise else "K")

    def set_speed_rpm(self, speed_rpm: float) -> None:
        """Rpm mode (``L``) at ``speed_rpm`` (0.01 resolution): ``S`` + 6 digits of 1/100 rpm."""
        check_range(speed_rpm, 0.01, self.max_speed_rpm, "rpm", f"{self.name} speed")
        self._ack("L")
        self._ack(f"S{round(speed_rpm * 100):06d}")

    def set_rate(self, rate: pint.Quantity) -> None:
        """Flow mode (``M``) at ``rate`` (any volume/time unit), sent in mL/min."""
        text = self._flow_text(rate)
        self._ack("M")
        self._ack(f"f{text}")

    def flow_rate(self) -> pint.Quantity:
        return Q_(self._line("f", decode_flow), "mL/min")

    # -- Pump ---------------------------------------------------------------------------
    def start(self) -> None:
        self._ack("H")

    def stop(self) -> None:
        self._ack("I")

    def dispense(self, volume: pint.Quantity, rate: pint.Quantity) -> None:
        """Volume-at-rate mode (``O``), volume ``v`` in mL, flow ``f``, start: all checked first."""
        volume_ml = magnitude(volume, "mL", f"{self.name} volume")
        check_chip(volume_ml, self.chip_limits.max_volume, "mL", f"{self.name} volume")
        volume_text = encode_flow(volume_ml, self._flow_with_e)
        rate_text = self._flow_text(rate)
        self._ack("O")
        self._ack(f"f{rate_text}")
        self._ack(f"v{volume_text}")
        self._ack("H")

    def commanded_volume(self, volume: pint.Quantity) -> pint.Quantity:
        """What the pump will deliver for ``volume``: ``v`` takes a four-digit mantissa."""
        volume_ml = magnitude(volume, "mL", f"{self.name} volume")
        return Q_(decode_flow(encode_flow(volume_ml, self._flow_with_e)), "mL")

    def counter_resolution(self, reading: pint.Quantity) -> pint.Quantity:
        """The step of the ``:`` total: the last reply's last decimal (``4.983 ml`` → 1 µL)."""
        return self._total_step

    def is_running(self) -> bool:
        """``E`` → ``+`` running, ``-`` not."""
        return self._flag("E")

    def dispensed(self) -> pint.Quantity:
        """``:`` total volume since the last ``W`` (e.g. ``4.983 ml``)."""
        total, self._total_step = self._line(":", _parse_total)
        return total

    def reset_dispensed(self) -> None:
        self._ack("W")

    def why_not_running(self) -> str:
        """``xe``: the pump's reason why it cannot run (text)."""
        return self._line("xe")

    def _flow_text(self, rate: pint.Quantity) -> str:
        rate_ml_min = magnitude(rate, "mL/min", f"{self.name} rate")
        check_range(rate_ml_min, 1e-4, self.max_flow_ml_min, "mL/min", f"{self.name} rate")
        check_chip(rate_ml_min, self.chip_limits.max_rate, "mL/min", f"{self.name} rate")
        return encode_flow(rate_ml_min, self._flow_with_e)


def _parse_flag(frame: bytes) -> bool:
    if frame not in (b"+", b"-"):
        raise WireProtocolError(f"Reglo: expected '+' or '-', got {frame!r}")
    return frame == b"+"


def _parse_total(text: str) -> tuple[pint.Quantity, pint.Quantity]:
    """``'4.983 ml'`` → (4.983 mL, its display step 0.001 mL)."""
    match = TOTAL_VOLUME.match(text)
    if match is None:
        raise WireProtocolError(f"Reglo: cannot read total volume {text!r} (expected e.g. '4.983 ml')")
    unit = "mL" if match.group(2).lower() == "ml" else "uL"
    number = match.group(1)
    decimals = len(number.split(".")[1]) if "." in number else 0
    return Q_(float(number), unit), Q_(10.0**-decimals, unit)


def _parse_line(frame: bytes) -> str:
    try:
        text = frame.decode("ascii").rstrip("\r\n")
    except UnicodeDecodeError:
        raise WireProtocolError(f"Reglo: reply {frame!r} is not ASCII") from None
    if not text:
        raise WireProtocolError(f"Reglo: unreadable reply {frame!r}")
    return text
