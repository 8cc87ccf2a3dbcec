"""The runner's side of the acquisition poller: which channels to poll, and the sink.

Every rig channel whose instrument is a sensor is polled at its period. Pump
``dispensed`` channels are not polled (the pump's serial line belongs to dosing); the
intent log writes the pump's readback as a reading of that channel after each dose.
The sink hands each batch to the interlock monitor first, then stores it (one
transaction per batch, idempotent on (channel, time)).
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

BATCH_WALL_S = 0.05


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

    def __call__(self, batch: list[Reading]) -> None:
        self.monitor.feed(batch)
        rows = [ReadingIn(self.channel_ids[r.channel], r.t_utc_s, r.value, r.quality) for r in batch]
        with self.recorder._lock:
            self.stored += ingest_readings(self.recorder.engine, rows).stored

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


def start_poller(rig: Rig, devices: Any, sink: StoreSink, clock: Any) -> tuple[Poller, list[str]]:
    channels, skipped = poll_channels(rig, devices)
    poller = Poller(channels, sink, clock, batch_readings=500, batch_interval_s=BATCH_WALL_S, on_health=sink.health)
    return poller.start(), skipped
