"""What a person reads for a time on a run's clock.

An accelerated (simulated) rig's clock runs days ahead of the wall: its readings' dates would lie
in the future. Such a run is read as *run time* since its start ("+12 h 30 min") beside the wall
date it started; a real run (clock rate 1) is read as real date-times with the time zone. Audit
entries, sign-ins and approvals are wall-clock already and are read as dates everywhere.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime, tzinfo

MINUTE_S = 60.0
HOUR_S = 3600.0
DAY_S = 86400.0


def wall_text(utc_s: float | None, tz: tzinfo | None = None) -> str:
    """A wall-clock instant as a date-time with its time zone (the server's zone unless ``tz``)."""
    if utc_s is None:
        return ""
    return datetime.fromtimestamp(utc_s).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def duration_text(seconds: float) -> str:
    """``+2 d 4 h 10 min``: a run-relative time, never negative (a reading stamped a hair before
    the start is at the start)."""
    seconds = max(0.0, seconds)
    if seconds < MINUTE_S:
        return f"+{seconds:.0f} s"
    days, rest = divmod(int(seconds // MINUTE_S), int(DAY_S // MINUTE_S))
    hours, minutes = divmod(rest, 60)
    parts = ([f"{days} d"] if days else []) + ([f"{hours} h"] if hours or days else []) + [f"{minutes} min"]
    return "+" + " ".join(parts)


def _seconds(value: object) -> float | None:
    """A stored time as a float; None for a missing one (None, or NaN out of a pandas frame)."""
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return None if math.isnan(number) else number


@dataclass(frozen=True)
class RunClock:
    """How to read one run's times: its clock rate, its start on its own clock and on the wall."""

    clock_rate: float
    started_s: float | None  # on the run's clock
    started_wall_s: float | None = None  # on the wall clock (None for runs before migration 0006)
    tz: tzinfo | None = None

    @classmethod
    def of(cls, run: object, tz: tzinfo | None = None) -> RunClock:
        """From any run record with ``clock_rate``, ``started_utc_s`` (and ``started_wall_utc_s``):
        a store row, a listing, or a pandas row (where a missing time is NaN)."""
        return cls(
            _seconds(getattr(run, "clock_rate", None)) or 1.0,
            _seconds(getattr(run, "started_utc_s", None)),
            _seconds(getattr(run, "started_wall_utc_s", None)),
            tz,
        )

    @property
    def simulated(self) -> bool:
        return self.clock_rate != 1.0

    def wall_of(self, clock_s: float) -> float | None:
        """When a time of the run's clock happened on the wall (None when the wall start is unknown)."""
        if not self.simulated:
            return clock_s
        if self.started_s is None or self.started_wall_s is None:
            return None
        return self.started_wall_s + (clock_s - self.started_s) / self.clock_rate

    def hours(self, clock_s: float) -> float:
        """Hours since the run started, on its clock (a chart's axis for a simulated run)."""
        return max(0.0, clock_s - (self.started_s if self.started_s is not None else clock_s)) / HOUR_S

    def text(self, clock_s: float | None) -> str:
        """One of the run's times as a person reads it: run time or a real date-time."""
        if clock_s is None:
            return ""
        if self.simulated:
            return duration_text(clock_s - self.started_s) if self.started_s is not None else "+0 s"
        return wall_text(min(clock_s, time.time()), self.tz)  # a real clock never reads the future

    def started_text(self) -> str:
        """When the run began, as a date on the wall (for a simulated run: run time and wall date)."""
        if self.started_s is None:
            return "not started"
        if not self.simulated:
            return wall_text(self.started_s, self.tz)
        wall = wall_text(self.started_wall_s, self.tz) if self.started_wall_s is not None else "wall time not recorded"
        return f"{wall} (simulated at {self.clock_rate:g}× real time)"

    def ended_text(self, ended_s: float | None, ended_wall_s: float | None) -> str:
        """When the run ended: a real date; for a simulated run its length in run time and the wall date."""
        if ended_s is None:
            return ""
        if not self.simulated:
            return wall_text(ended_s, self.tz)
        wall = wall_text(ended_wall_s, self.tz) if ended_wall_s is not None else "wall time not recorded"
        return f"{wall} (run time {self.text(ended_s)})"

    def axis_title(self) -> str:
        """A chart's time axis: hours since the start for a simulated run, dates for a real one."""
        return "run time (h since start)" if self.simulated else "time (date)"
