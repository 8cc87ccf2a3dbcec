"""Interlocks and hold conditions evaluated on every reading, as the poller delivers it.

``Watch`` follows one condition on the channels it names (``oxygen`` → every chip's oxygen
channel): per channel, since when the condition has held. The poller's sink calls
``Monitor.feed(batch)`` *before* the batch is written to the store, so the time from the
reading that completes an interlock's ``for`` duration to the safe-state command is one
batch interval (50 ms wall), not a database round trip. A failed read (DEVICE_ERROR) or a
stale value never trips and never counts as holding.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from protocols.interlock import Condition, Interlock
from protocols.rig_view import RigView, matching_channels

BAD_QUALITY = 1 | 4  # STALE | DEVICE_ERROR


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
        if t_s - start >= self.condition.for_s and channel not in self.latched:
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
    condition_t_s: float   # clock time of the reading that completed the condition
    command_t_s: float     # clock time the safe state was commanded
    latency_wall_s: float  # wall seconds between the two


class Monitor:
    def __init__(self, rig: RigView, interlocks: Iterable[Interlock], clock: Any,
                 on_trip: Callable[[Interlock, str, float], None]) -> None:
        self.rig, self.clock, self.on_trip = rig, clock, on_trip
        self.interlocks = [(i, self.watch(i)) for i in interlocks]
        self.holds: list[Watch] = []
        self.trips: list[Trip] = []
        self._lock = threading.Lock()

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
            for interlock, watch in self.interlocks:
                if r.channel in watch.units and watch.feed(r.channel, r.t_utc_s, r.value, r.quality):
                    self._trip(interlock, r.channel, r.t_utc_s)
            for watch in holds:
                if r.channel in watch.units:
                    watch.feed(r.channel, r.t_utc_s, r.value, r.quality)

    def _trip(self, interlock: Interlock, channel: str, condition_t_s: float) -> None:
        now_s = self.clock.now_s()  # the safe-state command is issued now, first thing in on_trip
        self.on_trip(interlock, channel, condition_t_s)
        self.trips.append(Trip(interlock, channel, condition_t_s, now_s,
                               max(now_s - condition_t_s, 0.0) / self.clock.rate))
