"""Ismatec Reglo ICC simulator on a pty (8 channels), following ``drivers.reglo_icc``'s reading.

Replies: ``*`` done, ``#`` not executed, ``+``/``-`` for ``E`` (running?), CR LF lines
for value queries. Total volume accumulates with the simulated clock ``now_s()``; in rpm
mode the flow is ``speed_rpm × ml_per_rev`` (*unconfirmed* default 0.01 mL/rev).
``on_dispense(volume_ml, rate_ml_min)`` receives each increment (negative counter-clockwise).

Faults: timeout, garbled, truncated, vanish (base); pump_alarm (``params["alarm"]``
default ``S``): the channel stops with its motor blocked, ``H`` answers ``#`` and ``xe``
reports (and clears) the block.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Callable

from instruments.drivers.reglo_icc import FLOW_VALUE
from instruments.sim.faults import Fault, FaultPlan
from instruments.sim.pty_device import PtyDevice
from instruments.transport.framing import TerminatorFraming

REQUEST = re.compile(rb"^([1-8])([A-Za-z:#]{1,2}?)([0-9.+\-E]*)\r$")
IDENTITY = "REGLO ICC 0208 306"


@dataclass
class ChannelState:
    running: bool = False
    clockwise: bool = True
    flow_mode: bool = True
    volume_mode: bool = False
    speed_rpm: float = 0.0
    flow_ml_min: float = 0.0
    target_ml: float = 0.0
    run_ml: float = 0.0
    total_ml: float = 0.0
    remote: bool = False
    blocked: str = ""


class RegloSim(PtyDevice):
    GARBLE_KEEP_TAIL = 2

    def __init__(
        self,
        name: str = "reglo",
        *,
        plan: FaultPlan | None = None,
        now_s: Callable[[], float] = time.monotonic,
        ml_per_rev: float = 0.01,
        on_dispense: Callable[[float, float], None] | None = None,
    ) -> None:
        super().__init__(name, TerminatorFraming(b"\r"), plan=plan, now_s=now_s)
        self.channels = {n: ChannelState() for n in range(1, 9)}
        self.ml_per_rev = ml_per_rev
        self.on_dispense = on_dispense
        self._last_tick_s = now_s()
        self._alarm_channel = 1

    def rate_ml_min(self, ch: ChannelState) -> float:
        return ch.flow_ml_min if ch.flow_mode else ch.speed_rpm * self.ml_per_rev

    def tick(self, now_s: float) -> None:
        dt_s, self._last_tick_s = max(now_s - self._last_tick_s, 0.0), now_s
        for ch in self.channels.values():
            if not ch.running or dt_s == 0:
                continue
            volume_ml = self.rate_ml_min(ch) * dt_s / 60.0
            if ch.volume_mode and ch.run_ml + volume_ml >= ch.target_ml:
                volume_ml, ch.running = max(ch.target_ml - ch.run_ml, 0.0), False
            ch.run_ml += volume_ml
            ch.total_ml += volume_ml
            if self.on_dispense is not None and volume_ml:
                self.on_dispense(volume_ml if ch.clockwise else -volume_ml, self.rate_ml_min(ch))

    def before_request(self, fault: Fault, now_s: float) -> str | None:
        if fault.kind != "pump_alarm":
            return None
        ch = self.channels[int(fault.params.get("channel", self._alarm_channel))]
        ch.running, ch.blocked = False, "motor blocked" if fault.params.get("alarm", "S") == "S" else "power reset"
        return ch.blocked

    def handle(self, request: bytes) -> bytes | None:
        match = REQUEST.match(request)
        if match is None:
            return b"#"
        channel, command, arg = int(match.group(1)), match.group(2).decode(), match.group(3).decode()
        self._alarm_channel = channel
        ch = self.channels[channel]
        handler = getattr(self, f"_cmd_{_NAMES.get(command, '')}", None)
        if handler is None:
            return b"#"
        reply: bytes = handler(ch, arg)
        return reply

    # -- commands: each returns the raw reply ---------------------------------------------
    def _cmd_start(self, ch: ChannelState, arg: str) -> bytes:
        if ch.blocked or self.rate_ml_min(ch) <= 0:
            return b"#"
        ch.running, ch.run_ml = True, 0.0
        return b"*"

    def _cmd_stop(self, ch: ChannelState, arg: str) -> bytes:
        ch.running = False
        return b"*"

    def _cmd_cw(self, ch: ChannelState, arg: str) -> bytes:
        ch.clockwise = True
        return b"*"

    def _cmd_ccw(self, ch: ChannelState, arg: str) -> bytes:
        ch.clockwise = False
        return b"*"

    def _cmd_remote(self, ch: ChannelState, arg: str) -> bytes:
        ch.remote = True
        return b"*"

    def _cmd_local(self, ch: ChannelState, arg: str) -> bytes:
        ch.remote = False
        return b"*"

    def _cmd_rpm_mode(self, ch: ChannelState, arg: str) -> bytes:
        ch.flow_mode, ch.volume_mode = False, False
        return b"*"

    def _cmd_flow_mode(self, ch: ChannelState, arg: str) -> bytes:
        ch.flow_mode, ch.volume_mode = True, False
        return b"*"

    def _cmd_volume_mode(self, ch: ChannelState, arg: str) -> bytes:
        ch.flow_mode, ch.volume_mode = True, True
        return b"*"

    def _cmd_speed(self, ch: ChannelState, arg: str) -> bytes:
        if not arg:
            return f"{ch.speed_rpm:.2f}\r\n".encode()
        if len(arg) != 6 or not arg.isdigit() or int(arg) > 10000:
            return b"#"
        ch.speed_rpm = int(arg) / 100.0
        return b"*"

    def _cmd_flow(self, ch: ChannelState, arg: str) -> bytes:
        if not arg:
            return f"{_mmmmse(ch.flow_ml_min)}\r\n".encode()
        value = _decode(arg)
        if value is None:
            return b"#"
        ch.flow_ml_min = value
        return b"*"

    def _cmd_volume(self, ch: ChannelState, arg: str) -> bytes:
        value = _decode(arg)
        if value is None:
            return b"#"
        ch.target_ml = value
        return b"*"

    def _cmd_total(self, ch: ChannelState, arg: str) -> bytes:
        return f"{ch.total_ml:.3f} ml\r\n".encode()

    def _cmd_reset_total(self, ch: ChannelState, arg: str) -> bytes:
        ch.total_ml = 0.0
        return b"*"

    def _cmd_running(self, ch: ChannelState, arg: str) -> bytes:
        return b"+" if ch.running else b"-"

    def _cmd_why(self, ch: ChannelState, arg: str) -> bytes:
        reason = ch.blocked or ("no flow rate set" if self.rate_ml_min(ch) <= 0 else "ready")
        ch.blocked = ""
        return f"{reason}\r\n".encode()

    def _cmd_identity(self, ch: ChannelState, arg: str) -> bytes:
        return f"{IDENTITY}\r\n".encode()


_NAMES = {
    "H": "start",
    "I": "stop",
    "J": "cw",
    "K": "ccw",
    "B": "remote",
    "A": "local",
    "L": "rpm_mode",
    "M": "flow_mode",
    "O": "volume_mode",
    "S": "speed",
    "f": "flow",
    "v": "volume",
    ":": "total",
    "W": "reset_total",
    "E": "running",
    "xe": "why",
    "#": "identity",
}


def _decode(text: str) -> float | None:
    match = FLOW_VALUE.match(text)
    return None if match is None else int(match.group(1)) / 1000.0 * 10 ** int(match.group(2))


def _mmmmse(value_ml_min: float) -> str:
    if value_ml_min <= 0:
        return "0000E+0"
    mantissa, exponent = f"{value_ml_min:.3e}".split("e")
    return f"{mantissa.replace('.', '')}E{int(exponent):+d}"
