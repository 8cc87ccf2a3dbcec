"""Fault injection: a plan of faults in time, consulted by every simulated device.

A scenario schedules faults by device name and clock time; a simulator asks the plan,
at each request it serves, which faults are active for it now and behaves accordingly.
Every fault that fires is logged with its time, so a test can check that the driver saw
it and recovered.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

# The kinds a scenario may schedule; each simulator handles those that apply to it.
FAULT_KINDS = {
    "timeout": "no reply at all",
    "garbled": "reply bytes corrupted",
    "truncated": "reply cut short",
    "crc_error": "reply with a wrong checksum (safe mode / Modbus RTU)",
    "modbus_exception": "Modbus exception reply (param 'code', default 4 = device failure)",
    "pump_alarm": "pump alarm (param 'alarm': 'S' stalled or 'R' reset after power loss)",
    "dropout": "sensor stops answering, then comes back",
    "vanish": "serial device disappears and reappears under a new pty path",
    "word_order": "float32 sent with the wrong word order",
}


@dataclass(frozen=True)
class Fault:
    kind: str
    device: str
    at_s: float
    duration_s: float = 0.0  # 0 = one request only
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; choose one of: {', '.join(FAULT_KINDS)}")

    def covers(self, now_s: float) -> bool:
        return self.at_s <= now_s <= self.at_s + self.duration_s if self.duration_s else now_s >= self.at_s


@dataclass(frozen=True)
class FiredFault:
    fault: Fault
    t_s: float
    detail: str


class FaultPlan:
    """Thread-safe: simulators run in their own threads."""

    def __init__(self, faults: list[Fault] | None = None) -> None:
        self._pending = list(faults or [])
        self._spent: set[int] = set()
        self.log: list[FiredFault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._pending.append(fault)

    def take(self, device: str, now_s: float) -> list[Fault]:
        """Faults active for ``device`` now; one-shot faults are used up by this call."""
        with self._lock:
            active = []
            for index, fault in enumerate(self._pending):
                if fault.device != device or index in self._spent or not fault.covers(now_s):
                    continue
                if not fault.duration_s:
                    self._spent.add(index)
                active.append(fault)
            return active

    def record(self, fault: Fault, now_s: float, detail: str = "") -> None:
        with self._lock:
            self.log.append(FiredFault(fault, now_s, detail))

    def fired(self, kind: str | None = None, device: str | None = None) -> list[FiredFault]:
        with self._lock:
            return [
                f
                for f in self.log
                if (kind is None or f.fault.kind == kind) and (device is None or f.fault.device == device)
            ]
