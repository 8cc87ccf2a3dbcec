"""The runner's side of the acquisition poller: which channels to poll, and the sink.

Every rig channel whose instrument is a sensor is polled at its period. Pump
``dispensed`` channels are not polled (the pump's serial line belongs to dosing); the
intent log writes the pump's readback as a reading of that channel after each dose.
The sink hands each batch to the interlock monitor first, then stores it (one
transaction per batch, idempotent on (channel, time)). Slots the poller served without a
reading (skipped: ``late``; ``no_value``) are kept by the sink and stored before the next
batch of readings, in the run's poll session (store.repositories.polls): when a reading is
stored, every gap before it is too, so the store can tell a skipped poll from a lost write.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from instruments.acquisition.poller import Channel as PollChannel
from instruments.acquisition.poller import Poller, Reading
from instruments.rig.model import Rig
from protocols.run.interlocks import Monitor
from protocols.run.record import Recorder
from store.ingest import ReadingIn, ingest_readings
from store.repositories.polls import GapRow, add_gaps

BATCH_WALL_S = 0.05
MERGE_LOOKBACK = 64  # pending gaps searched for one to extend (a group's channels interleave)


AlarmFn = Callable[[str, str, str], None]  # (severity, source, message)


class StoreSink:
    """Interlocks first, then the store; a channel whose device stops answering (or never
    answered) raises a warning alarm once, and an info alarm when it answers again, so a
    fault the drivers ride out by retrying is still on the record for the people watching.

    Device health comes from the poller's health hook (:meth:`health`), not from readings:
    a read that fails before the first good value yields no reading but is still a fault.
    """

    def __init__(
        self,
        recorder: Recorder,
        channel_ids: dict[str, int],
        monitor: Monitor,
        alarm: AlarmFn | None = None,
        states: Callable[[], None] | None = None,
    ) -> None:
        self.recorder, self.channel_ids, self.monitor = recorder, channel_ids, monitor
        self.alarm = alarm
        self.states = states  # after every poll: instruments' connection states to the store when they change
        self.failing: set[str] = set()
        self.errors: dict[str, str] = {}  # channel -> its last poll's error, while it fails (the clock's pacing)
        self._failing_lock = threading.Lock()  # one worker thread per bus calls health()
        self.stored = 0
        self.session_id: int | None = None  # the run's poll session, once recorded: gaps wait for it
        self._gaps: list[tuple[GapRow, int]] = []  # (gap, readings handed over before it)
        self._gaps_lock = threading.Lock()
        self._delivered = 0  # readings this sink has stored (or found stored): the batcher's order

    def __call__(self, batch: list[Reading]) -> None:
        self.monitor.feed(batch)
        rows = [ReadingIn(self.channel_ids[r.channel], r.t_utc_s, r.value, r.quality) for r in batch]
        with self.recorder._lock:
            gaps = self._due_gaps(self._delivered + len(rows))
            write = self._writer(gaps)
            self.stored += ingest_readings(self.recorder.engine, rows, with_first_batch=write).stored
            self._delivered += len(rows)
            self._forget(gaps)

    def gap(self, channel: str, first_slot: int, slots: int, reason: str, readings_before: int) -> None:
        """The poller's gap hook: slots of ``channel`` served without a reading. Kept until the readings
        handed over before it are stored, then stored with them (one transaction): a stored gap never
        runs ahead of a reading that a crash could still lose."""
        new = GapRow(self.channel_ids[channel], first_slot, slots, reason)
        with self._gaps_lock:
            for i in range(len(self._gaps) - 1, max(-1, len(self._gaps) - 1 - MERGE_LOOKBACK), -1):
                old, _ = self._gaps[i]
                if (
                    old.channel_id == new.channel_id
                    and old.reason == reason
                    and old.first_slot + old.slots == first_slot
                ):
                    self._gaps[i] = (old._replace(slots=old.slots + slots), readings_before)
                    return
            self._gaps.append((new, readings_before))

    def store_gaps(self) -> None:
        """Store the gaps whose readings before them are stored (at a clean stop: all of them)."""
        with self.recorder._lock:
            gaps = self._due_gaps(self._delivered)
            write = self._writer(gaps)
            if write is not None:
                with self.recorder.engine.begin() as connection:
                    write(connection)
            self._forget(gaps)

    def _due_gaps(self, stored_through: int) -> list[tuple[GapRow, int]]:
        if self.session_id is None:
            return []
        with self._gaps_lock:
            return [(gap, before) for gap, before in self._gaps if before <= stored_through]

    def _writer(self, gaps: list[tuple[GapRow, int]]) -> Callable[[Any], object] | None:
        session_id = self.session_id
        if not gaps or session_id is None:
            return None
        return lambda connection: add_gaps(connection, session_id, [gap for gap, _ in gaps])

    def _forget(self, stored: list[tuple[GapRow, int]]) -> None:
        """Drop the stored gaps; one extended since it was taken keeps its newer slots."""
        if not stored:
            return
        with self._gaps_lock:
            for gap, _ in stored:
                for i, (kept, before) in enumerate(self._gaps):
                    if kept[:2] == gap[:2] and kept.reason == gap.reason:
                        rest = kept.slots - gap.slots
                        if rest > 0:
                            self._gaps[i] = (kept._replace(first_slot=gap.first_slot + gap.slots, slots=rest), before)
                        else:
                            del self._gaps[i]
                        break

    def failing_now(self) -> dict[str, str]:
        """The channels whose last poll failed, with its error (a copy: the poll workers change it)."""
        with self._failing_lock:
            return dict(self.errors)

    def health(self, channel: str, error: str) -> None:
        """After every poll of ``channel``: ``error`` is "" when the read succeeded."""
        with self._failing_lock:
            if error:
                self.errors[channel] = error
            else:
                self.errors.pop(channel, None)
        if self.states is not None:
            self.states()
        if self.alarm is None:
            return
        with self._failing_lock:
            was_failing = channel in self.failing
            if bool(error) == was_failing:
                return  # no change: one alarm per transition
            (self.failing.add if error else self.failing.discard)(channel)
        if error:
            self.alarm(
                "warning",
                f"instrument:{channel}",
                f"{channel}: the device is not answering ({error}); "
                "the last good value (if any) is held and flagged DEVICE_ERROR",
            )
        else:
            self.alarm("info", f"instrument:{channel}", f"{channel}: the device answers again")


def poll_channels(rig: Rig, devices: Any) -> tuple[list[PollChannel], list[str]]:
    """Poller channels for the rig's sensor channels; and the channels skipped (with why)."""
    channels, skipped = [], []
    for spec in rig.channels:
        device = devices.devices.get(spec.instrument)
        if device is None:
            skipped.append(f"{spec.name}: {devices.failed.get(spec.instrument, 'no device')}")
            continue
        if not hasattr(device, "read"):
            continue  # pumps: their counter is read by the intent log
        unit = "percent" if spec.unit.strip().startswith("%") else spec.unit
        plausible = tuple(spec.plausible) if spec.plausible else None
        channels.append(PollChannel(spec.name, device, spec.measurement, unit, spec.poll_period_s, plausible))
    return channels, skipped


def start_poller(
    rig: Rig, devices: Any, sink: StoreSink, clock: Any, on_schedule: Callable[[dict[str, Any]], None] | None = None
) -> tuple[Poller, list[str]]:
    channels, skipped = poll_channels(rig, devices)
    poller = Poller(
        channels,
        sink,
        clock,
        batch_readings=500,
        batch_interval_s=BATCH_WALL_S,
        on_health=sink.health,
        on_gap=sink.gap,
    )
    return poller.start(on_schedule), skipped
