"""Interlocks and hold conditions evaluated on every reading, as the poller delivers it.

``Watch`` follows one condition on the channels it names (``oxygen`` → every chip's oxygen
channel): per channel, since when the condition has held. The poller's sink calls
``Monitor.feed(batch)`` *before* the batch is written to the store, so the time from the
reading that completes an interlock's ``for`` duration to the safe-state command is one
batch interval (50 ms wall), not a database round trip. A failed read (DEVICE_ERROR) or a
stale value never trips and never counts as holding.

A blind interlock is a tripped interlock: ``Monitor.start_watchdog`` checks every channel an
interlock watches, and one with no good reading for its grace period (``grace_s``: five poll
periods, at least a minute of clock time, and at least ``BLIND_MIN_WALL_S`` of wall time so
an accelerated clock on a busy machine does not trip on a late thread) gets the interlock's
own actions through ``on_blind`` — the safe state and an alarm, once, until it reads again.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from protocols.language.interlock import Condition, Interlock
from protocols.language.rig_view import RigView, matching_channels

BAD_QUALITY = 1 | 4  # STALE | DEVICE_ERROR
BLIND_GRACE_POLLS = 5
BLIND_GRACE_MIN_S = 60.0  # clock seconds
BLIND_MIN_WALL_S = 10.0  # buses are served in real time: at 7200× a neighbour's 1 s timeouts are hours of clock
WATCHDOG_WALL_S = 0.2

OnBlind = Callable[[Interlock, str, float], None]  # (interlock, channel, clock seconds without a good reading)


def grace_s(poll_period_s: float) -> float:
    """Clock seconds a watched channel may go without a good reading before its interlock acts."""
    return max(BLIND_GRACE_POLLS * poll_period_s, BLIND_GRACE_MIN_S)


def _jitter_s(for_s: float) -> float:
    """How much shorter than its duration a condition may have held and still count: a reading is
    taken a little after its slot (a thread wakes, a stepped clock crawls at 1x after landing), so
    two readings exactly ``for_s`` apart in slots may be a few milliseconds less apart in time."""
    return min(1.0, 0.01 * for_s)


@dataclass
class Watch:
    condition: Condition
    units: dict[str, str]  # channel -> unit
    since_s: dict[str, float | None] = field(default_factory=dict)
    latest_s: dict[str, float] = field(default_factory=dict)
    latched: set[str] = field(default_factory=set)

    def feed(self, channel: str, t_s: float, value: float, quality: int) -> bool:
        """True when the condition has just held for its full duration on ``channel``."""
        self.latest_s[channel] = t_s
        if quality & BAD_QUALITY or not self.condition.holds(value, self.units[channel]):
            self.since_s[channel] = None
            self.latched.discard(channel)
            return False
        start = self.since_s.get(channel)
        if start is None:
            start = self.since_s[channel] = t_s
        if t_s - start >= self.condition.for_s - _jitter_s(self.condition.for_s) and channel not in self.latched:
            self.latched.add(channel)
            return True
        return False

    def all_held(self) -> bool:
        """Every channel has held the condition for its duration (a hold_until is met)."""
        return bool(self.units) and all(c in self.latched for c in self.units)


@dataclass(frozen=True)
class Trip:
    interlock: Interlock
    channel: str
    condition_t_s: float  # clock time of the reading that completed the condition
    command_t_s: float  # clock time the safe state was commanded
    latency_wall_s: float  # wall seconds between the two


class Monitor:
    def __init__(
        self,
        rig: RigView,
        interlocks: Iterable[Interlock],
        clock: Any,
        on_trip: Callable[[Interlock, str, float], None],
        *,
        on_blind: OnBlind | None = None,
        poll_periods_s: dict[str, float] | None = None,
    ) -> None:
        self.rig, self.clock, self.on_trip, self.on_blind = rig, clock, on_trip, on_blind
        self.interlocks = [(i, self.watch(i)) for i in interlocks]
        self.holds: list[Watch] = []
        self.trips: list[Trip] = []
        self._lock = threading.Lock()
        watched = {c for _, w in self.interlocks for c in w.units}
        periods = poll_periods_s or {}
        self.grace_s = {c: grace_s(periods.get(c, 1.0)) for c in watched}
        self._last_good: dict[str, tuple[float, float]] = {}  # channel -> (clock s, monotonic s)
        self.blind: set[str] = set()
        self._watchdog: threading.Thread | None = None
        self._stop_watchdog = threading.Event()

    def watch(self, condition: Condition) -> Watch:
        units = {c.name: c.unit for c in matching_channels(self.rig, condition.channel)}
        return Watch(condition, units)

    def hold(self, condition: Condition) -> Watch:
        watch = self.watch(condition)
        with self._lock:
            self.holds.append(watch)
        return watch

    def release(self, watch: Watch) -> None:
        with self._lock:
            if watch in self.holds:
                self.holds.remove(watch)

    def feed(self, readings: Iterable[Any]) -> None:
        """``readings`` have ``channel, t_utc_s, value, quality`` (the poller's Reading)."""
        with self._lock:
            holds = list(self.holds)
        for r in readings:
            if r.channel in self.grace_s and not r.quality & BAD_QUALITY:
                self._last_good[r.channel] = (r.t_utc_s, time.monotonic())
                self.blind.discard(r.channel)
            for interlock, watch in self.interlocks:
                if r.channel in watch.units and watch.feed(r.channel, r.t_utc_s, r.value, r.quality):
                    self._trip(interlock, r.channel, r.t_utc_s)
            for watch in holds:
                if r.channel in watch.units:
                    watch.feed(r.channel, r.t_utc_s, r.value, r.quality)

    def last_good_s(self, channel: str) -> float | None:
        """Clock time of ``channel``'s last good reading delivered here (or of the watchdog's start)."""
        good = self._last_good.get(channel)
        return None if good is None else good[0]

    def _trip(self, interlock: Interlock, channel: str, condition_t_s: float) -> None:
        now_s = self.clock.now_s()  # the safe-state command is issued now, first thing in on_trip
        self.on_trip(interlock, channel, condition_t_s)
        self.trips.append(
            Trip(interlock, channel, condition_t_s, now_s, max(now_s - condition_t_s, 0.0) / self.clock.rate)
        )

    # -- blind interlocks ---------------------------------------------------------------
    def start_watchdog(self) -> None:
        """Watch for channels that stop reading; every watched channel starts its grace now."""
        if self.on_blind is None or not self.grace_s or self._watchdog is not None:
            return
        now = (self.clock.now_s(), time.monotonic())
        for channel in self.grace_s:
            self._last_good.setdefault(channel, now)
        self._stop_watchdog.clear()
        self._watchdog = threading.Thread(target=self._watch_loop, name="interlock-watchdog", daemon=True)
        self._watchdog.start()

    def stop_watchdog(self) -> None:
        self._stop_watchdog.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=5.0)
            self._watchdog = None

    def _watch_loop(self) -> None:
        while not self._stop_watchdog.wait(WATCHDOG_WALL_S):
            self.check_blind(self.clock.now_s(), time.monotonic())

    def check_blind(self, now_s: float, now_wall_s: float) -> list[str]:
        """Channels that have just gone blind (each reported once until it reads again)."""
        newly = []
        for channel, grace in self.grace_s.items():
            good_s, good_wall_s = self._last_good.get(channel, (now_s, now_wall_s))
            if channel in self.blind or now_s - good_s <= grace or now_wall_s - good_wall_s <= BLIND_MIN_WALL_S:
                continue
            self.blind.add(channel)
            newly.append(channel)
            for interlock, watch in self.interlocks:
                if channel in watch.units and self.on_blind is not None:
                    self.on_blind(interlock, channel, now_s - good_s)
        return newly
