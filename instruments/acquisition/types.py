"""The acquisition poller's vocabulary: channels, readings, quality flags, statistics.

A *channel* is one quantity of one sensor, read every ``period_s`` of clock time and
checked against a plausible range. A *reading* is what the poller hands to its sink:
clock time (UTC seconds), value in the channel's unit, quality flags, and two counters
that let a downstream check prove completeness:

* ``seq`` — 0, 1, 2, … per channel over every reading the poller produced; a gap means a
  reading was lost downstream, a repeat means it was duplicated.
* ``slot`` — the schedule slot k the reading belongs to (slot time = start + k·period);
  a gap in ``slot`` is a *missed slot* (no poll happened in that whole period), which the
  poller counts in ``ChannelStats.missed_slots`` instead of inventing a reading for it.

The quality flag values equal ``store.ingest.Quality`` (instruments may not import the
store; a test pins the two together).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Callable, Hashable, NamedTuple

from instruments.capabilities import Sensor
from instruments.errors import ConfigError


class ReadingQuality(enum.IntFlag):
    """Quality flags of a reading (same bits as ``store.ingest.Quality``); 0 = good."""

    OK = 0
    STALE = 1  # the value is not a fresh measurement (last good value repeated)
    OUT_OF_RANGE = 2  # outside the channel's plausible range (value kept as read)
    DEVICE_ERROR = 4  # the read failed; the value is the last good one


class Reading(NamedTuple):
    """One timestamped reading, as the sink receives it; ``value`` is never NaN."""

    channel: str
    seq: int
    slot: int
    t_utc_s: float
    value: float
    quality: int
    unit: str
    error: str = ""


Sink = Callable[[list[Reading]], None]
# (channel name, error text) after every poll of the channel; "" when the read succeeded.
# Called even when a failed read yields no reading (no good value yet), so a device that
# never answered is as visible as one that stopped answering.
HealthHook = Callable[[str, str], None]
# (channel name, first slot, number of slots, reason, readings before) for slots served without
# a reading: "late" (the whole period passed before a poll: skipped) or "no_value" (the read failed
# before any good value). With the readings' slots they account for every slot of the schedule.
# "readings before": how many readings the poller had handed to its batcher when the gap was
# seen, so a sink can store a gap only once the readings before it are stored (never ahead of them).
GapHook = Callable[[str, int, int, str, int], None]


@dataclass(frozen=True, eq=False)
class Channel:
    """One quantity of one sensor, polled every ``period_s`` seconds of clock time.

    ``period_s = 0`` polls back to back (as fast as the bus allows; used by benchmarks).
    ``plausible`` is the (low, high) range in ``unit``; a value outside it is flagged
    OUT_OF_RANGE. ``bus`` overrides the worker grouping (see :func:`worker_key`).
    """

    name: str
    sensor: Sensor
    quantity: str
    unit: str
    period_s: float
    plausible: tuple[float, float] | None = None
    bus: str | None = None

    def __post_init__(self) -> None:
        where = f"acquisition channel {self.name!r}"
        if not self.name:
            raise ConfigError("an acquisition channel needs a name")
        if not (math.isfinite(self.period_s) and self.period_s >= 0):
            raise ConfigError(f"{where}: period_s must be ≥ 0 s (0 = back to back), not {self.period_s}")
        if self.plausible is not None:
            low, high = self.plausible
            if not low < high:
                raise ConfigError(f"{where}: plausible range {self.plausible} must be (low, high) with low < high")


def worker_key(channel: Channel) -> Hashable:
    """Which worker thread polls ``channel``: one per bus, else one per sensor.

    A sensor on a shared Modbus bus (``sensor.link.bus``) goes to that bus's worker — the
    line is half-duplex, so polling its devices from several threads gains nothing. Any
    other sensor gets its own worker, so a slow or dead device delays only itself.
    """
    if channel.bus is not None:
        return ("named", channel.bus)
    bus = getattr(getattr(channel.sensor, "link", None), "bus", None)
    return ("bus", id(bus)) if bus is not None else ("sensor", id(channel.sensor))


def worker_name(channel: Channel) -> str:
    """A readable thread name for the worker of ``channel``."""
    if channel.bus is not None:
        return channel.bus
    bus = getattr(getattr(channel.sensor, "link", None), "bus", None)
    return str(getattr(bus, "name", None) or getattr(channel.sensor, "name", channel.name))


@dataclass
class ChannelStats:
    """Counters of one channel; ``readings`` equals the next ``seq``."""

    polls: int = 0  # reads attempted for this channel
    readings: int = 0  # readings produced (handed to the batcher)
    ok: int = 0
    out_of_range: int = 0
    errors: int = 0  # failed reads (with or without a reading)
    errors_without_value: int = 0  # failed before any good value: no reading produced
    missed_slots: int = 0  # schedule slots in which no poll happened
    last_error: str = ""


@dataclass
class SinkStats:
    """Counters of the batcher and its sink."""

    batches: int = 0
    delivered: int = 0
    sink_errors: int = 0
    largest_batch: int = 0
    pending: int = 0
    last_sink_error: str = ""


@dataclass
class PollerStats:
    channels: dict[str, ChannelStats] = field(default_factory=dict)
    sink: SinkStats = field(default_factory=SinkStats)
    workers: int = 0

    @property
    def produced(self) -> int:
        return sum(stats.readings for stats in self.channels.values())

    def to_dict(self) -> dict:
        return {
            "workers": self.workers,
            "produced": self.produced,
            "sink": vars(self.sink).copy(),
            "channels": {name: vars(stats).copy() for name, stats in self.channels.items()},
        }
