"""One poll worker per bus (or per stand-alone sensor): scheduling on the clock, reading, flagging.

Channels of one sensor with the same period form a *poll group*: one ``sensor.read()``
serves all of them. Groups are scheduled on the shared Clock without drift: slot k of a
group is due at ``start + k·period`` (never "last poll + period"). A poll late by less than
one period still serves its slot; a slot whose whole period passed without a poll (a slow
neighbour on the bus, a long retry) is *skipped and counted* in ``missed_slots`` — no
reading is invented for it, and ``Reading.slot`` shows the gap.

A failed read (any InstrumentError, or any other exception from a driver — a driver bug
must not kill the worker) yields, for each channel of the group, a reading flagged
DEVICE_ERROR|STALE carrying the channel's last good value and the error text; before the
first good value there is nothing honest to report, so no reading is produced and
``errors_without_value`` counts it. Both kinds of slot without a reading (skipped: ``late``;
failed before a value: ``no_value``) go to the gap hook, so the store can account for every
slot (store.repositories.polls). Values are never NaN: a non-finite value or a missing
quantity counts as a device error.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
from dataclasses import dataclass, field
from typing import Callable

from instruments.acquisition.types import Channel, ChannelStats, HealthHook, Reading, ReadingQuality
from instruments.capabilities import Measurement
from instruments.clock import Clock
from twin.units import ureg

log = logging.getLogger(__name__)
_BAD = int(ReadingQuality.DEVICE_ERROR | ReadingQuality.STALE)


def unit_converter(from_unit: str, to_unit: str) -> Callable[[float], float]:
    """``value`` in ``from_unit`` → ``to_unit`` (affine: covers scales and °C/K offsets)."""
    if from_unit == to_unit:
        return float
    offset = float(ureg.Quantity(0.0, from_unit).to(to_unit).magnitude)
    scale = float(ureg.Quantity(1.0, from_unit).to(to_unit).magnitude) - offset
    return lambda value: value * scale + offset


@dataclass
class ChannelState:
    """A channel's running state; touched only by its worker thread (stats read as copies)."""

    channel: Channel
    stats: ChannelStats = field(default_factory=ChannelStats)
    last_good: float | None = None
    poll_error: str = ""  # the last poll's error ("" = it read fine)
    _converters: dict[str, Callable[[float], float]] = field(default_factory=dict)

    def reading(
        self, slot: int, t_utc_s: float, by_quantity: dict[str, Measurement] | None, error: str
    ) -> Reading | None:
        """This channel's reading for one poll (None: failed before any good value)."""
        self.stats.polls += 1
        value, quality = None, int(ReadingQuality.OK)
        if not error:
            value, error = self._value(by_quantity or {})
        self.poll_error = error
        if error:
            self.stats.errors += 1
            self.stats.last_error = error
            if self.last_good is None:
                self.stats.errors_without_value += 1
                return None
            value, quality = self.last_good, _BAD
        else:
            assert value is not None
            self.last_good = value
            quality = self._range_flag(value)
        return self._emit(slot, t_utc_s, value, quality, error)

    def _value(self, by_quantity: dict[str, Measurement]) -> tuple[float | None, str]:
        channel = self.channel
        measurement = by_quantity.get(channel.quantity)
        if measurement is None:
            return None, f"{channel.sensor.name} reported no {channel.quantity!r} (got {sorted(by_quantity)})"
        try:
            value = self._converter(measurement.unit)(measurement.value)
        except Exception as exc:  # noqa: BLE001 - pint raises several unrelated types
            return None, f"cannot convert {measurement.unit!r} to {channel.unit!r}: {exc}"
        if not math.isfinite(value):
            return None, f"{channel.sensor.name} reported a non-finite {channel.quantity}: {value!r}"
        return value, ""

    def _converter(self, unit: str) -> Callable[[float], float]:
        if unit not in self._converters:
            self._converters[unit] = unit_converter(unit, self.channel.unit)
        return self._converters[unit]

    def _range_flag(self, value: float) -> int:
        plausible = self.channel.plausible
        if plausible is not None and not plausible[0] <= value <= plausible[1]:
            self.stats.out_of_range += 1
            return int(ReadingQuality.OUT_OF_RANGE)
        self.stats.ok += 1
        return int(ReadingQuality.OK)

    def _emit(self, slot: int, t_utc_s: float, value: float, quality: int, error: str) -> Reading:
        seq, self.stats.readings = self.stats.readings, self.stats.readings + 1
        return Reading(self.channel.name, seq, slot, t_utc_s, value, quality, self.channel.unit, error)


@dataclass
class PollGroup:
    """Channels of one sensor sharing a period; slot k due at ``start_s + k·period_s``."""

    states: list[ChannelState]
    period_s: float
    start_s: float
    next_slot: int = 0
    in_poll: bool = False  # set before a slot is claimed, cleared after its readings are emitted

    @property
    def sensor(self):  # noqa: ANN201 - a Sensor
        return self.states[0].channel.sensor

    def due_s(self) -> float:
        return self.start_s + self.next_slot * self.period_s if self.period_s else -math.inf

    def claim_slot(self, now_s: float) -> int:
        """The slot to poll now; slots whose whole period already passed are counted missed."""
        if self.period_s:
            current = int((now_s - self.start_s) // self.period_s)
            # as due_s() computes due times: the claimed slot's interval [due, due + period) holds now_s
            while current > 0 and self.start_s + current * self.period_s > now_s:
                current -= 1
            while self.start_s + (current + 1) * self.period_s <= now_s:
                current += 1
            if current > self.next_slot:
                for state in self.states:
                    state.stats.missed_slots += current - self.next_slot
                self.next_slot = current
        slot, self.next_slot = self.next_slot, self.next_slot + 1
        return slot


class BusWorker:
    """A thread polling its groups in due order; readings go to ``emit`` (the batcher)."""

    def __init__(
        self,
        name: str,
        groups: list[PollGroup],
        clock: Clock,
        stop: threading.Event,
        emit: Callable[[list[Reading]], None],
        on_health: HealthHook | None = None,
        on_gap: Callable[[str, int, int, str], None] | None = None,
    ) -> None:
        self.name, self.groups, self.clock, self._stop, self._emit = name, groups, clock, stop, emit
        self._on_health, self._on_gap = on_health, on_gap
        self._order = itertools.count()
        self.thread = threading.Thread(target=self._run, name=f"poll {name}", daemon=True)

    def _run(self) -> None:
        queue = [(group.due_s(), next(self._order), group) for group in self.groups]
        heapq.heapify(queue)
        while queue and not self._stop.is_set():
            due_s, _, group = queue[0]
            remaining_s = due_s - self.clock.now_s()
            if remaining_s > 0:
                self.clock.wait(self._stop, remaining_s)
                continue  # re-check: stopped, or woke a little early
            self.poll(group)
            heapq.heapreplace(queue, (group.due_s(), next(self._order), group))

    def poll(self, group: PollGroup) -> None:
        """Read the group's sensor once and hand one reading per channel to ``emit``."""
        group.in_poll = True  # before the claim: see Poller.polled_through
        try:
            self._poll(group)
        finally:
            group.in_poll = False

    def _poll(self, group: PollGroup) -> None:
        # one clock reading for the claim and the reading's time: slot k's reading lies in
        # [due_k, due_k + period), so the store can tell which slot a stored reading served
        t_utc_s = self.clock.now_s()
        first_free = group.next_slot
        slot = group.claim_slot(t_utc_s)
        if slot > first_free:
            self._gap(group.states, first_free, slot - first_free, "late")
        by_quantity: dict[str, Measurement] | None = None
        error = ""
        try:
            by_quantity = {m.quantity: m for m in group.sensor.read()}
        except Exception as exc:  # noqa: BLE001 - InstrumentError expected; a driver bug must not kill the worker
            error = f"{type(exc).__name__}: {exc}"
        readings = [state.reading(slot, t_utc_s, by_quantity, error) for state in group.states]
        self._gap([s for s, r in zip(group.states, readings) if r is None], slot, 1, "no_value")
        self._emit([r for r in readings if r is not None])
        if self._on_health is not None:
            for state in group.states:
                try:
                    self._on_health(state.channel.name, state.poll_error)
                except Exception:  # noqa: BLE001 - a watcher's failure must not stop acquisition
                    log.exception("health hook failed for %s", state.channel.name)

    def _gap(self, states: list[ChannelState], first_slot: int, slots: int, reason: str) -> None:
        if self._on_gap is None:
            return
        for state in states:
            try:
                self._on_gap(state.channel.name, first_slot, slots, reason)
            except Exception:  # noqa: BLE001 - a watcher's failure must not stop acquisition
                log.exception("gap hook failed for %s", state.channel.name)
