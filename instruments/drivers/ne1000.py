"""New Era NE-1000 / NE-500 syringe pump (also sold as WPI Aladdin): basic and safe mode.

The driver knows the command set only; bytes go through a ByteTransport (``SerialLink`` at
19200 8N1 on hardware, a pty simulator, or a ``ScriptedTransport``). Every setpoint is
checked with units against the pump's limits for the current syringe and the chip's
limits *before* any byte is sent (SetpointOutOfRange). Volumes are in µL when the
syringe diameter is ≤ 14 mm, else mL (the pump's own rule). See ``ne1000_protocol`` for
what is *unconfirmed* (CRC init, safe-mode length byte).

Retry note: the link may resend a command whose reply was lost. All commands sent here
are idempotent except ``DIR REV``, which is sent with ``retry=False``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pint

from instruments.connection import ConnectionState
from instruments.drivers import ne1000_protocol as proto
from instruments.drivers.limits import ChipLimits, check_chip, check_range, magnitude
from instruments.errors import ConfigError, SetpointOutOfRange, WireProtocolError
from instruments.transport.base import ByteTransport
from instruments.transport.framing import StxEtxFraming
from twin.units import Q_


@dataclass(frozen=True)
class DispensedVolumes:
    infused: pint.Quantity
    withdrawn: pint.Quantity


class NE1000:
    """One pump at ``address`` (0–99) on a transport. Implements ``capabilities.Pump``."""

    def __init__(
        self,
        transport: ByteTransport,
        *,
        address: int = 0,
        syringe_diameter_mm: float | None = None,
        chip_limits: ChipLimits | None = None,
        safe_mode: bool = False,
        name: str = "ne1000",
    ) -> None:
        if not 0 <= address <= 99:
            raise ConfigError(f"NE-1000 address {address} outside 0–99")
        self.transport = transport
        self.name = name
        self.address = address
        self.diameter_mm = syringe_diameter_mm
        self.chip_limits = chip_limits or ChipLimits()
        self.safe_mode = safe_mode
        self.last_status = ""
        self._rate_units = ""  # last units sent; kept while pumping (the pump refuses a change)
        self._basic_framing = StxEtxFraming()
        self._safe_framing = proto.safe_framing()

    # -- Device -------------------------------------------------------------------------
    @property
    def connection_state(self) -> ConnectionState:
        return self.transport.connection_state

    def identity(self) -> str:
        """Firmware string, e.g. ``NE1000V3.928``."""
        return self.command("VER").data

    def close(self) -> None:
        self.transport.close()

    # -- low level ----------------------------------------------------------------------
    def command(self, command: str, args: str = "", *, retry: bool = True) -> proto.Reply:
        """Send one command (e.g. ``"RAT"``, ``"1.500MM"``); return the parsed reply."""
        data = f"{self.address:02d}{command}{args}".encode("ascii")
        if self.safe_mode:
            request, framing, parse = proto.encode_safe(data), self._safe_framing, self._parse_safe
        else:
            request, framing, parse = data + b"\r", self._basic_framing, proto.parse_basic
        reply: proto.Reply = self.transport.query(request, parse, framing=framing, retry=retry)
        if reply.address != self.address:
            raise WireProtocolError(f"{self.name}: reply from address {reply.address}, expected {self.address}")
        self.last_status = reply.status
        return reply

    @staticmethod
    def _parse_safe(frame: bytes) -> proto.Reply:
        return proto.parse_body(proto.decode_safe(frame))

    def enable_safe_mode(self, timeout_s: int) -> None:
        """``SAF<timeout_s>``: alarm T if the host is silent for ``timeout_s`` (1–255 s).

        *Unconfirmed*: the reply to SAF comes in the old (basic) framing.
        """
        if not 1 <= timeout_s <= 255:
            raise SetpointOutOfRange(f"safe-mode timeout {timeout_s} s outside 1–255 s")
        self.command("SAF", str(timeout_s))
        self.safe_mode = True

    # -- settings -----------------------------------------------------------------------
    def set_diameter(self, diameter_mm: float) -> None:
        """Syringe inner diameter in mm (0.1–50); decides the volume unit (µL if ≤ 14 mm)."""
        text = proto.format_number(diameter_mm)
        if text is None or not proto.DIAMETER_MIN_MM <= diameter_mm <= proto.DIAMETER_MAX_MM:
            raise SetpointOutOfRange(
                f"{self.name}: syringe diameter {diameter_mm} mm outside "
                f"{proto.DIAMETER_MIN_MM}–{proto.DIAMETER_MAX_MM} mm"
            )
        self.command("DIA", text)
        self.diameter_mm = float(text)

    def set_rate(self, rate: pint.Quantity) -> None:
        """Pumping rate (any volume/time unit); the pump unit is chosen for resolution."""
        rate_ul_min = self._checked_rate_ul_min(rate)
        units, text = self._rate_code(rate_ul_min)
        self.command("RAT", f"{text}{units}")
        self._rate_units = units

    def set_volume(self, volume: pint.Quantity) -> None:
        """Target volume; 0 means pump continuously."""
        self.command("VOL", self._checked_volume_text(volume, allow_zero=True))

    def set_direction(self, direction: str) -> None:
        """``INF`` infuse, ``WDR`` withdraw, ``REV`` reverse (never resent on a lost reply)."""
        direction = direction.upper()
        if direction not in ("INF", "WDR", "REV"):
            raise ConfigError(f"{self.name}: direction {direction!r}; use INF, WDR or REV")
        self.command("DIR", direction, retry=direction != "REV")

    # -- Pump ---------------------------------------------------------------------------
    def start(self) -> None:
        self.command("RUN")

    def stop(self) -> None:
        self.command("STP")

    def dispense(self, volume: pint.Quantity, rate: pint.Quantity) -> None:
        """Infuse ``volume`` at ``rate``: both checked first, then DIR INF, RAT, VOL, RUN."""
        volume_text = self._checked_volume_text(volume, allow_zero=False)
        rate_ul_min = self._checked_rate_ul_min(rate)
        units, rate_text = self._rate_code(rate_ul_min)
        self.command("DIR", "INF")
        self.command("RAT", f"{rate_text}{units}")
        self._rate_units = units
        self.command("VOL", volume_text)
        self.command("RUN")

    def commanded_volume(self, volume: pint.Quantity) -> pint.Quantity:
        """What the pump will infuse for ``volume``: ``VOL`` takes four digits (10.101 µL → 10.10 µL)."""
        unit = self._volume_unit()
        return Q_(float(self._checked_volume_text(volume, allow_zero=False)), unit)

    def counter_resolution(self, reading: pint.Quantity) -> pint.Quantity:
        """The step of the ``DIS`` counter at ``reading`` (four digits: 1 µL from 1,000 µL on)."""
        unit = self._volume_unit()
        return Q_(proto.display_step(float(reading.to(unit).magnitude)), unit)

    def _volume_unit(self) -> str:
        return {"UL": "uL", "ML": "mL"}[proto.volume_units(self._diameter())]

    def status(self) -> str:
        """Status character (I W S P T U X), from an empty command."""
        return self.command("").status

    def is_running(self) -> bool:
        """True while infusing, withdrawing or purging."""
        return self.status() in proto.PUMPING

    def dispensed_volumes(self) -> DispensedVolumes:
        """``DIS`` → ``I<inf>W<wdr><UL|ML>``."""
        data = self.command("DIS").data
        try:
            units = {"UL": "uL", "ML": "mL"}[data[-2:]]
            infused, withdrawn = data[1:-2].split("W")
            if data[0] != "I":
                raise ValueError(data)
            return DispensedVolumes(Q_(float(infused), units), Q_(float(withdrawn), units))
        except (KeyError, ValueError):
            raise WireProtocolError(
                f"{self.name}: cannot read DIS reply {data!r} (expected I<inf>W<wdr>UL|ML)"
            ) from None

    def dispensed(self) -> pint.Quantity:
        """Volume infused since the last ``CLD INF``."""
        return self.dispensed_volumes().infused

    def clear_dispensed(self, direction: str = "INF") -> None:
        if direction.upper() not in ("INF", "WDR"):
            raise ConfigError(f"{self.name}: CLD takes INF or WDR, not {direction!r}")
        self.command("CLD", direction.upper())

    # -- checks (no bytes sent) ---------------------------------------------------------
    def _diameter(self) -> float:
        if self.diameter_mm is None:
            raise ConfigError(f"{self.name}: syringe diameter unknown; call set_diameter() first")
        return self.diameter_mm

    def _checked_rate_ul_min(self, rate: pint.Quantity) -> float:
        rate_ul_min = magnitude(rate, "uL/min", f"{self.name} rate")
        low, high = proto.rate_limits_ul_min(self._diameter())
        check_range(rate_ul_min, low, high, "µL/min", f"{self.name} rate ({self._diameter()} mm syringe)")
        check_chip(rate_ul_min, self.chip_limits.max_rate, "uL/min", f"{self.name} rate")
        return rate_ul_min

    def _rate_code(self, rate_ul_min: float) -> tuple[str, str]:
        """The pump unit with the most resolution (largest number ≤ 9999) and its text.

        While pumping, the units last sent are kept if they can express the rate, because
        the pump refuses a unit change while pumping (?NA).
        """
        if self.last_status in proto.PUMPING and self._rate_units:
            kept = proto.format_number(rate_ul_min / proto.RATE_UNITS_UL_MIN[self._rate_units])
            if kept is not None:
                return self._rate_units, kept
        best = max(
            (
                (rate_ul_min / f, code)
                for code, f in proto.RATE_UNITS_UL_MIN.items()
                if rate_ul_min / f <= proto.MAX_NUMBER
            ),
            default=None,
        )
        text = proto.format_number(best[0]) if best else None
        if best is None or text is None:
            raise SetpointOutOfRange(f"{self.name}: rate {rate_ul_min:.4g} µL/min not representable")
        return best[1], text

    def _checked_volume_text(self, volume: pint.Quantity, *, allow_zero: bool) -> str:
        units = proto.volume_units(self._diameter())
        value = magnitude(volume, {"UL": "uL", "ML": "mL"}[units], f"{self.name} volume")
        if allow_zero and value == 0:
            return "0"
        check_chip(value, self.chip_limits.max_volume, {"UL": "uL", "ML": "mL"}[units], f"{self.name} volume")
        text = proto.format_number(value)
        if text is None:
            raise SetpointOutOfRange(
                f"{self.name}: volume {volume:~P} outside 0.001–9999 {units.lower()} "
                f"(the pump counts in {units.lower()} for a {self._diameter()} mm syringe)"
            )
        return text
