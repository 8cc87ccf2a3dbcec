"""TEER meter simulator on a pty, speaking docs/teer-protocol.md.

``teer_ohm_cm2(well, now_s)`` and ``temperature_c(now_s)`` supply the physics (defaults:
a steady 1200 Ω·cm² barrier at 37 °C); an electrode lifted out of the medium is
simulated by returning None (→ ``ERR 200``). Faults: timeout, dropout, garbled,
truncated, vanish (all from the base class).
"""

from __future__ import annotations

import time
from typing import Callable

from instruments.sim.faults import FaultPlan
from instruments.sim.pty_device import PtyDevice
from instruments.transport.framing import TerminatorFraming

IDENTITY = "CHIPTWIN,TEER-SIM,0001,1.0"


class TeerSim(PtyDevice):
    def __init__(
        self,
        name: str = "teer",
        *,
        wells: tuple[str, ...] = ("A1", "A2", "A3", "A4"),
        teer_ohm_cm2: Callable[[str, float], float | None] | None = None,
        temperature_c: Callable[[float], float] | None = None,
        plan: FaultPlan | None = None,
        now_s: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name, TerminatorFraming(b"\n"), plan=plan, now_s=now_s)
        self.wells = wells
        self.teer_ohm_cm2 = teer_ohm_cm2 or (lambda well, t: 1200.0)
        self.temperature_c = temperature_c or (lambda t: 37.0)

    def handle(self, request: bytes) -> bytes | None:
        try:
            text = request.decode("ascii").strip()
        except UnicodeDecodeError:
            return _error(100, "unknown command")
        command, _, argument = text.partition(" ")
        command = command.upper()
        if command == "*IDN?":
            return f"{IDENTITY}\n".encode()
        if command == "WELLS?":
            return f"WELLS {','.join(self.wells)}\n".encode()
        if command == "MEAS?":
            return self._measure(argument.strip())
        return _error(100, "unknown command")

    def _measure(self, well: str) -> bytes:
        if not well:
            return _error(101, "missing argument: MEAS? <well>")
        if well not in self.wells:
            return _error(102, f"unknown well {well}")
        now_s = self.now_s()
        teer = self.teer_ohm_cm2(well, now_s)
        if teer is None:
            return _error(200, f"open circuit on {well}: electrode not in medium")
        return f"TEER {well} {teer:.1f} {self.temperature_c(now_s):.2f}\n".encode()


def _error(code: int, text: str) -> bytes:
    return f"ERR {code} {text}\n".encode()
