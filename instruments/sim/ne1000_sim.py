"""NE-1000 simulator on a pty, copying the manual's behaviours byte for byte.

- Basic mode (``00RAT1.5MM\\r`` → STX ``00S`` ETX) and safe mode (STX, length, data,
  CRC hi, CRC lo, ETX); the reply uses the framing of the request.
- Settings persist; a rate changed while pumping is *not* persisted (a power-loss alarm R
  brings back the last rate set while stopped). Rate units cannot change while pumping
  (?NA); direction can change while pumping only with VOL 0 (?NA otherwise).
- While an alarm stands every command is refused with ``A?<code>``, which acknowledges it.
- Safe mode (``SAF<n>``): host silent for n seconds → alarm T, pumping stops.
- DIS accumulates with the simulated clock ``now_s()`` (accelerate it freely);
  ``on_dispense(volume_ml, rate_ml_min)`` receives each increment (negative when withdrawing).
- Faults: timeout, garbled, truncated, vanish (base class); crc_error (safe mode only:
  CRC bytes flipped); pump_alarm (``params["alarm"]`` S stalled or R reset, default S).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Callable

from instruments.drivers import ne1000_protocol as proto
from instruments.errors import WireProtocolError
from instruments.sim.faults import Fault, FaultPlan
from instruments.sim.pty_device import PtyDevice
from instruments.transport.framing import ETX, STX

COMMAND = re.compile(r"^(\d{0,2})([A-Z]{0,3})(.*)$")
FIRMWARE = "NE1000V3.928"


class _Refused(Exception):
    def __init__(self, code: str) -> None:
        self.code = code


@dataclass
class PumpState:
    diameter_mm: float = 26.59
    rate: float = 1.0
    rate_units: str = "MH"
    persisted_rate: tuple[float, str] = (1.0, "MH")
    volume_target: float = 0.0  # in the pump's volume unit (µL if DIA <= 14 mm, else mL)
    direction: str = "INF"
    status: str = "S"
    infused_ml: float = 0.0
    withdrawn_ml: float = 0.0
    run_ml: float = 0.0  # pumped since the last RUN, for the target volume
    alarm: str = ""
    safe_timeout_s: float = 0.0  # 0 = basic mode
    last_request_s: float = 0.0
    last_tick_s: float = 0.0


class NE1000Sim(PtyDevice):
    def __init__(
        self,
        name: str = "ne1000",
        *,
        address: int = 0,
        plan: FaultPlan | None = None,
        now_s: Callable[[], float] = time.monotonic,
        on_dispense: Callable[[float, float], None] | None = None,
        state: PumpState | None = None,
    ) -> None:
        super().__init__(name, proto.RequestFraming(), plan=plan, now_s=now_s)
        self.address = address
        self.on_dispense = on_dispense
        self.state = state or PumpState()
        self.state.last_request_s = self.state.last_tick_s = now_s()

    # -- physics ------------------------------------------------------------------------
    def rate_ml_min(self) -> float:
        return self.state.rate * proto.RATE_UNITS_UL_MIN[self.state.rate_units] / 1000.0

    def _volume_ml(self, value: float) -> float:
        return value / 1000.0 if proto.volume_units(self.state.diameter_mm) == "UL" else value

    def tick(self, now_s: float) -> None:
        st = self.state
        dt_s, st.last_tick_s = max(now_s - st.last_tick_s, 0.0), now_s
        if st.safe_timeout_s and now_s - st.last_request_s > st.safe_timeout_s and not st.alarm:
            st.alarm, st.status = "T", "S"
        if st.status not in ("I", "W") or dt_s == 0:
            return
        volume_ml = self.rate_ml_min() * dt_s / 60.0
        target_ml = self._volume_ml(st.volume_target)
        if target_ml and st.run_ml + volume_ml >= target_ml:
            volume_ml, st.status = max(target_ml - st.run_ml, 0.0), "S"
        st.run_ml += volume_ml
        if st.direction == "INF":
            st.infused_ml += volume_ml
        else:
            st.withdrawn_ml += volume_ml
        if self.on_dispense is not None and volume_ml:
            self.on_dispense(volume_ml if st.direction == "INF" else -volume_ml, self.rate_ml_min())

    # -- faults -------------------------------------------------------------------------
    def before_request(self, fault: Fault, now_s: float) -> str | None:
        if fault.kind != "pump_alarm":
            return None
        code = str(fault.params.get("alarm", "S"))
        self.state.alarm, self.state.status = code, "S"
        if code == "R":
            self.state.rate, self.state.rate_units = self.state.persisted_rate
        return f"alarm {code}"

    def corrupt(self, kind: str, reply: bytes) -> bytes | None:
        safe = len(reply) > 5 and reply[1] == len(reply) - 1
        if kind == "crc_error":
            return reply[:-3] + bytes([reply[-3] ^ 0xFF, reply[-2] ^ 0xFF, ETX]) if safe else None
        if kind == "garbled" and safe:
            return reply[:2] + b"\xff" * (len(reply) - 5) + reply[-3:]
        return super().corrupt(kind, reply)

    # -- protocol -----------------------------------------------------------------------
    def handle(self, request: bytes) -> bytes | None:
        safe = request[:1] == bytes([STX])
        try:
            data = proto.decode_safe(request) if safe else request.rstrip(b"\r")
        except WireProtocolError:
            return self._frame(f"{self.state.status}?COM", safe=True)
        text = data.decode("ascii", "replace").replace(" ", "").upper()
        match = COMMAND.match(text)
        if match is None:
            return self._frame(f"{self.state.status}?COM", safe)
        address, command, args = match.groups()
        if address and int(address) != self.address:
            return None  # another pump's command
        self.state.last_request_s = self.now_s()
        return self._frame(self._execute(command, args), safe)

    def _frame(self, body: str, safe: bool) -> bytes:
        data = f"{self.address:02d}{body}".encode("ascii")
        return proto.encode_safe(data) if safe else bytes([STX]) + data + bytes([ETX])

    def _execute(self, command: str, args: str) -> str:
        st = self.state
        if st.alarm:
            code, st.alarm = st.alarm, ""
            return f"A?{code}"
        handler = getattr(self, f"_cmd_{command.lower()}", None) if command else self._cmd_status
        if handler is None:
            return f"{st.status}?"
        try:
            data = handler(args)
        except _Refused as refused:
            return f"{st.status}?{refused.code}"
        return f"{st.status}{data}"

    def _cmd_status(self, args: str) -> str:
        return ""

    def _cmd_ver(self, args: str) -> str:
        return FIRMWARE

    def _cmd_saf(self, args: str) -> str:
        if not args:
            return str(int(self.state.safe_timeout_s))
        self.state.safe_timeout_s = float(_number(args, 0, 255))
        return ""

    def _cmd_dia(self, args: str) -> str:
        if not args:
            return proto.format_number(self.state.diameter_mm) or ""
        if self.state.status in proto.PUMPING:
            raise _Refused("NA")
        self.state.diameter_mm = _number(args, proto.DIAMETER_MIN_MM, proto.DIAMETER_MAX_MM)
        return ""

    def _cmd_rat(self, args: str) -> str:
        st = self.state
        if not args:
            return f"{proto.format_number(st.rate)}{st.rate_units}"
        units = args[-2:] if args[-2:] in proto.RATE_UNITS_UL_MIN else st.rate_units
        value = _number(args[:-2] if args[-2:] in proto.RATE_UNITS_UL_MIN else args, proto.MIN_NUMBER, proto.MAX_NUMBER)
        low, high = proto.rate_limits_ul_min(st.diameter_mm)
        if not low <= value * proto.RATE_UNITS_UL_MIN[units] <= high:
            raise _Refused("OOR")
        pumping = st.status in proto.PUMPING
        if pumping and units != st.rate_units:
            raise _Refused("NA")
        st.rate, st.rate_units = value, units
        if not pumping:
            st.persisted_rate = (value, units)
        return ""

    def _cmd_vol(self, args: str) -> str:
        if not args:
            return f"{proto.format_number(self.state.volume_target) or '0'}{proto.volume_units(self.state.diameter_mm)}"
        self.state.volume_target = 0.0 if float(args or 0) == 0 else _number(args, proto.MIN_NUMBER, proto.MAX_NUMBER)
        return ""

    def _cmd_dir(self, args: str) -> str:
        st = self.state
        if not args:
            return st.direction
        if args not in ("INF", "WDR", "REV"):
            raise _Refused("")
        if st.status in proto.PUMPING and st.volume_target:
            raise _Refused("NA")
        st.direction = {"INF": "INF", "WDR": "WDR", "REV": "WDR" if st.direction == "INF" else "INF"}[args]
        if st.status in proto.PUMPING:
            st.status = "I" if st.direction == "INF" else "W"
        return ""

    def _cmd_run(self, args: str) -> str:
        st = self.state
        if st.status not in proto.PUMPING:
            st.run_ml, st.status = 0.0, "I" if st.direction == "INF" else "W"
        return ""

    def _cmd_stp(self, args: str) -> str:
        self.state.status = "S"
        return ""

    def _cmd_dis(self, args: str) -> str:
        st, units = self.state, proto.volume_units(self.state.diameter_mm)
        scale = 1000.0 if units == "UL" else 1.0
        return f"I{_display(st.infused_ml * scale)}W{_display(st.withdrawn_ml * scale)}{units}"

    def _cmd_cld(self, args: str) -> str:
        if args == "INF":
            self.state.infused_ml = 0.0
        elif args == "WDR":
            self.state.withdrawn_ml = 0.0
        else:
            raise _Refused("")
        return ""


def _number(text: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _Refused("") from None
    if not low <= value <= high:
        raise _Refused("OOR")
    return value


def _display(value: float) -> str:
    """A volume as the pump shows it: four digits (0.000 … 9999)."""
    return proto.format_number(value) or ("0.000" if value < proto.MIN_NUMBER else "9999")
