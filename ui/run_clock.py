"""What a person reads for a time on a run's clock.

A run's readings, doses, samples, steps and alarms are stamped on its rig's clock. For a real
run that is the wall clock. For a simulated run at an accelerated rate it is not: 72 h of
protocol pass in minutes, so its stamps run days ahead of the wall clock and a date would be a
lie. The run therefore also keeps when it started and ended on the wall clock
(``started_wall_utc_s``, ``ended_wall_utc_s``), and a simulated run's times are shown relative
to its start ("run +12 h 30 min") — never as a date in the future or an age below zero.
Audit entries, sign-ins and approvals are always wall-clock times and are shown as dates.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol


class _RunTimes(Protocol):
    started_utc_s: float | None
    started_wall_utc_s: float | None
    clock_rate: float


@dataclass(frozen=True)
class RunClock:
    """The clock of one run: its start on its own clock and on the wall clock, and its rate."""

    started_s: float  # on the run's clock
    started_wall_s: float | None  # on the wall clock (None: stored before wall times were kept)
    rate: float  # run-clock seconds per wall second

    @property
    def simulated(self) -> bool:
        return not math.isclose(self.rate, 1.0)

    def run_time_s(self, t_s: float) -> float:
        """Seconds of run time since the start."""
        return t_s - self.started_s

    def wall_s(self, t_s: float) -> float | None:
        """When a run-clock time happened on the wall clock (None if the run's wall start is unknown)."""
        if not self.simulated:
            return t_s
        if self.started_wall_s is None:
            return None
        return self.started_wall_s + (t_s - self.started_s) / self.rate

    def age_s(self, t_s: float, now_wall_s: float | None = None) -> float | None:
        """Wall-clock seconds since ``t_s`` happened (never below zero; None if unknown)."""
        wall = self.wall_s(t_s)
        if wall is None:
            return None
        return max(0.0, (time.time() if now_wall_s is None else now_wall_s) - wall)

    def label(self, t_s: float | None) -> str:
        """A simulated run's time as run time, a real run's as its date."""
        if t_s is None or not math.isfinite(t_s):
            return "—"
        if self.simulated:
            return f"run {run_time_text(self.run_time_s(t_s))}"
        return date_text(t_s)


def clock_of(run: _RunTimes) -> RunClock | None:
    """The run's clock, or None for a run that has not started."""
    if run.started_utc_s is None:
        return None
    wall = run.started_wall_utc_s
    if wall is None and math.isclose(run.clock_rate, 1.0):
        wall = run.started_utc_s
    return RunClock(float(run.started_utc_s), wall, float(run.clock_rate))


def run_time_text(seconds: float) -> str:
    """Run time as a person says it: "+0 min", "+45 min", "+12 h 30 min", "+3 d 4 h 05 min"."""
    sign = "−" if seconds < 0 else "+"
    minutes = int(round(abs(seconds) / 60.0))
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{sign}{days} d {hours} h {minutes:02d} min"
    if hours:
        return f"{sign}{hours} h {minutes:02d} min"
    return f"{sign}{minutes} min"


def date_text(t_utc_s: float | None) -> str:
    """A wall-clock time as a date a person reads: "2026-12-04 12:30:05 UTC"."""
    if t_utc_s is None or not math.isfinite(t_utc_s):
        return "—"
    return datetime.fromtimestamp(t_utc_s, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration_text(seconds: float | None) -> str:
    """A wall-clock duration: "42 s", "3 min 05 s", "2 h 10 min"."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s} s"
    minutes, s = divmod(s, 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
