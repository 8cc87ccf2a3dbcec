"""The acquisition poller: every channel read at its period, flagged, batched to a sink.

Usage::

    channels = [Channel("chip1/o2", visiferm, "oxygen_air_saturation", "percent", 1.0, (0, 150)),
                Channel("chip1/temp", visiferm, "temperature", "degC", 1.0, (20, 45))]
    with Poller(channels, sink, clock, batch_readings=500, batch_interval_s=1.0) as poller:
        ...                       # readings flow to sink(list[Reading]) from one thread
    poller.stats()                # per channel: polls, readings, errors, missed slots, …

Threads: one worker per bus (sensors sharing a ModbusBus — the line is half-duplex), one
per stand-alone sensor, so a slow or dead device delays only itself and, at most, its bus
neighbours by its timeout (ModbusBus fails a lost device fast). One flusher thread calls
the sink (see ``acquisition_batch``). Timestamps come from the shared Clock (UTC
seconds), scheduling is drift-free (``start + k·period``) and missed slots are counted,
not filled (see ``acquisition_worker``). ``stop()`` joins the workers first, then flushes
every reading they produced, then joins the flusher: after it returns, the sink has
received each produced reading exactly once (``Reading.seq`` contiguous per channel),
unless the sink kept raising (then ``undelivered()`` holds the rest).

The instruments layer does not know the store: the runner adapts the sink, e.g.
``ReadingIn(channel_ids[r.channel], r.t_utc_s, r.value, r.quality, r.unit)``.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from typing import Callable, Collection, Hashable, Iterable

from instruments.acquisition.batch import Batcher
from instruments.acquisition.check import check_sequences
from instruments.acquisition.types import (
    Channel,
    ChannelStats,
    GapHook,
    HealthHook,
    PollerStats,
    Reading,
    ReadingQuality,
    Sink,
    worker_key,
    worker_name,
)
from instruments.acquisition.worker import BusWorker, ChannelState, PollGroup
from instruments.clock import Clock
from instruments.errors import ConfigError

STAGGER = True

__all__ = [
    "Channel",
    "GapHook",
    "HealthHook",
    "Poller",
    "PollerStats",
    "Reading",
    "ReadingQuality",
    "Sink",
    "check_sequences",
]


class Poller:
    def __init__(
        self,
        channels: Iterable[Channel],
        sink: Sink,
        clock: Clock,
        *,
        batch_readings: int = 500,
        batch_interval_s: float = 1.0,
        start_utc_s: float | None = None,
        join_timeout_s: float = 10.0,
        stagger: bool = STAGGER,
        on_health: HealthHook | None = None,
        on_gap: GapHook | None = None,
    ) -> None:
        """``batch_interval_s`` is real (wall) time; ``start_utc_s`` (clock time) anchors slot 0.

        ``stagger`` spreads the groups of one worker that share a period evenly over that
        period (group i of n starts i·period/n later), so a bus serves a steady stream
        instead of a burst at every whole period in which the last device polled is late.
        """
        self.channels = list(channels)
        _check_unique(self.channels)
        self.clock, self.join_timeout_s, self._start_utc_s = clock, join_timeout_s, start_utc_s
        self.stagger = stagger
        self.on_health = on_health  # called after every poll of a channel: see HealthHook
        self.on_gap = on_gap  # slots served without a reading: see GapHook
        self._batcher = Batcher(sink, batch_readings, batch_interval_s)
        self._states = {channel.name: ChannelState(channel) for channel in self.channels}
        self._stop = threading.Event()
        self._workers: list[BusWorker] = []
        self._running = False

    def start(self, on_schedule: Callable[[dict[str, tuple[float, float]]], None] | None = None) -> Poller:
        """Plan the slots, hand them to ``on_schedule`` (before any poll: the store keeps the schedule
        before the first reading), then start polling."""
        if self._running or self._workers:
            raise RuntimeError("this poller was already started; make a new one")
        start_s = self.clock.now_s() if self._start_utc_s is None else self._start_utc_s
        self._workers = [
            BusWorker(name, groups, self.clock, self._stop, self._batcher.add, self.on_health, self._gap_hook())
            for name, groups in self._plan(start_s).items()
        ]
        if on_schedule is not None:
            on_schedule(self.schedule())
        self._batcher.start()
        for worker in self._workers:
            worker.thread.start()
        self._running = True
        return self

    def _plan(self, start_s: float) -> dict[str, list[PollGroup]]:
        """Workers by bus, each with its poll groups (one per sensor and period)."""
        by_group: dict[tuple[Hashable, int, float], list[ChannelState]] = defaultdict(list)
        names: dict[Hashable, str] = {}
        for channel in self.channels:
            key = worker_key(channel)
            if key not in names:
                name = worker_name(channel)
                names[key] = name if name not in names.values() else f"{name} #{len(names)}"
            by_group[(key, id(channel.sensor), channel.period_s)].append(self._states[channel.name])
        workers: dict[str, list[PollGroup]] = defaultdict(list)
        for (key, _, period_s), states in by_group.items():
            workers[names[key]].append(PollGroup(states, period_s, start_s))
        if self.stagger:
            for groups in workers.values():
                _stagger(groups)
        return dict(workers)

    def stop(self) -> PollerStats:
        """Stop polling, join the workers, flush every produced reading, join the flusher."""
        if not self._running:
            return self.stats()
        self._stop.set()
        stuck = []
        for worker in self._workers:
            worker.thread.join(self.join_timeout_s)
            if worker.thread.is_alive():
                stuck.append(worker.name)
        self._batcher.stop(self.join_timeout_s)
        self._running = False
        if stuck:
            raise RuntimeError(
                f"poll workers {stuck} did not stop within {self.join_timeout_s} s (a driver read without a timeout?)"
            )
        return self.stats()

    def stats(self) -> PollerStats:
        """A snapshot (copies) of every channel's counters and the sink's."""
        channels = {name: ChannelStats(**vars(state.stats)) for name, state in self._states.items()}
        return PollerStats(channels, self._batcher.snapshot(), len(self._workers))

    def _gap_hook(self) -> Callable[[str, int, int, str], None] | None:
        """The workers' gap hook: ``on_gap`` with the count of readings handed over before the gap."""
        on_gap = self.on_gap
        if on_gap is None:
            return None
        batcher = self._batcher
        return lambda channel, first, slots, reason: on_gap(channel, first, slots, reason, batcher.added)

    def schedule(self) -> dict[str, tuple[float, float]]:
        """Each channel's (slot 0 due time on the clock, period in clock seconds), once started:
        slot k is due at ``first + k·period``."""
        return {s.channel.name: (g.start_s, g.period_s) for w in self._workers for g in w.groups for s in g.states}

    # -- a stepped clock stops at poll slots (docs/clock.md, "Landing on poll slots") ----------
    def _groups_of(self, channels: Collection[str]) -> list[PollGroup]:
        return [g for w in self._workers for g in w.groups if any(s.channel.name in channels for s in g.states)]

    def next_due_s(self, channels: Collection[str], after_s: float = -math.inf, late_periods: float = 0.0) -> float:
        """The clock time of the next slot not yet polled of any of ``channels`` (plus ``late_periods`` of
        its period: how late it may be), later than ``after_s`` (inf: none)."""
        groups = self._groups_of(channels)
        return min((d for g in groups if (d := g.due_s() + late_periods * g.period_s) > after_s), default=math.inf)

    def polled_through(self, channels: Collection[str], t_s: float, late_periods: float = 0.0) -> bool:
        """Every slot of ``channels`` due at or before clock ``t_s`` (less ``late_periods`` of its period)
        is read and its readings emitted."""
        for group in self._groups_of(channels):
            # due first: in_poll is set before the slot is claimed
            if group.due_s() + late_periods * group.period_s <= t_s or group.in_poll:
                return False
        return True

    def wait_delivered(self, timeout_s: float) -> bool:
        """Until the sink has taken every reading emitted so far (True), or ``timeout_s`` of wall time."""
        return self._batcher.wait_delivered(self._batcher.added, timeout_s)

    def undelivered(self) -> list[Reading]:
        return self._batcher.undelivered()

    @property
    def running(self) -> bool:
        return self._running

    def __enter__(self) -> Poller:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stagger(groups: list[PollGroup]) -> None:
    by_period: dict[float, list[PollGroup]] = defaultdict(list)
    for group in groups:
        by_period[group.period_s].append(group)
    for period_s, same in by_period.items():
        for index, group in enumerate(same):
            group.start_s += index * period_s / len(same)


def _check_unique(channels: list[Channel]) -> None:
    if not channels:
        raise ConfigError("the poller needs at least one channel")
    seen: set[str] = set()
    for channel in channels:
        if channel.name in seen:
            raise ConfigError(f"acquisition channel {channel.name!r} appears twice; channel names must be unique")
        seen.add(channel.name)
