"""One clock for the runner and the simulated rig: real, or accelerated (3600× = an hour a second).

Every timestamp the runner stores comes from a clock's ``now_s()`` (seconds since the Unix
epoch, UTC). An accelerated clock is defined by three numbers — its rate, the simulated
time it started at, and the real (wall) time it started — so two processes that share
those numbers (the sim-rig writes them into its endpoints file) share the same time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    @property
    def rate(self) -> float:
        """Clock seconds per wall-clock second (1 = real time)."""

    def now_s(self) -> float:
        """Current (possibly simulated) time, seconds since the Unix epoch, UTC."""

    def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds`` of clock time."""

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        """Wait for ``event`` at most ``timeout_s`` of clock time; True if it was set."""


class RealClock:
    rate = 1.0

    def now_s(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(seconds, 0.0))

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        return event.wait(max(timeout_s, 0.0))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "real"}


@dataclass(frozen=True)
class AcceleratedClock:
    """Simulated time runs ``rate`` times faster than the wall clock, from ``start_utc_s``."""

    rate: float = 3600.0
    start_utc_s: float = 0.0
    anchor_unix_s: float = 0.0

    @classmethod
    def starting_now(cls, rate: float, start_utc_s: float | None = None) -> "AcceleratedClock":
        if rate <= 0:
            raise ValueError(f"clock rate {rate} must be positive (1 = real time, 3600 = an hour a second)")
        wall = time.time()
        return cls(float(rate), wall if start_utc_s is None else float(start_utc_s), wall)

    def now_s(self) -> float:
        return self.start_utc_s + (time.time() - self.anchor_unix_s) * self.rate

    def sleep(self, seconds: float) -> None:
        time.sleep(max(seconds, 0.0) / self.rate)

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        return event.wait(max(timeout_s, 0.0) / self.rate)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "accelerated",
            "rate": self.rate,
            "start_utc_s": self.start_utc_s,
            "anchor_unix_s": self.anchor_unix_s,
        }


def clock_from_dict(document: dict[str, Any]) -> RealClock | AcceleratedClock:
    """The clock another process described with ``to_dict()``."""
    if document.get("kind", "real") == "real":
        return RealClock()
    return AcceleratedClock(float(document["rate"]), float(document["start_utc_s"]), float(document["anchor_unix_s"]))
