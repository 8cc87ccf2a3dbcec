"""The runner's side of the acquisition poller: which channels to poll, and the sink.

Every rig channel whose instrument is a sensor is polled at its period. Pump
``dispensed`` channels are not polled (the pump's serial line belongs to dosing); the
intent log writes the pump's readback as a reading of that channel after each dose.
The sink hands each batch to the interlock monitor first, then stores it (one
transaction per batch, idempotent on (channel, time)).
"""

from __future__ import annotations

from typing import Any, Callable

from instruments.acquisition import Channel as PollChannel, Poller, Reading
from instruments.acquisition_types import ReadingQuality
from instruments.rig import Rig
from protocols.interlocks_runtime import Monitor
from protocols.record import Recorder
from store.ingest import ReadingIn, ingest_readings

BATCH_WALL_S = 0.05


AlarmFn = Callable[[str, str, str], None]  # (severity, source, message)


class StoreSink:
    """Interlocks first, then the store; a channel whose device stops answering raises a
    warning alarm once (and an info alarm when it answers again), so a fault the drivers
    ride out by retrying is still on the record for the people watching."""

    def __init__(self, recorder: Recorder, channel_ids: dict[str, int], monitor: Monitor,
                 alarm: AlarmFn | None = None) -> None:
        self.recorder, self.channel_ids, self.monitor = recorder, channel_ids, monitor
        self.alarm = alarm
        self.failing: set[str] = set()
        self.stored = 0

    def __call__(self, batch: list[Reading]) -> None:
        self.monitor.feed(batch)
        self._watch_devices(batch)
        rows = [ReadingIn(self.channel_ids[r.channel], r.t_utc_s, r.value, r.quality) for r in batch]
        with self.recorder._lock:
            self.stored += ingest_readings(self.recorder.engine, rows).stored

    def _watch_devices(self, batch: list[Reading]) -> None:
        if self.alarm is None:
            return
        for reading in batch:
            failed = bool(reading.quality & ReadingQuality.DEVICE_ERROR)
            if failed and reading.channel not in self.failing:
                self.failing.add(reading.channel)
                self.alarm("warning", f"instrument:{reading.channel}",
                           f"{reading.channel}: the device is not answering ({reading.error or 'read failed'}); "
                           "the last good value is held and flagged DEVICE_ERROR")
            elif not failed and reading.channel in self.failing:
                self.failing.discard(reading.channel)
                self.alarm("info", f"instrument:{reading.channel}", f"{reading.channel}: the device answers again")


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
    poller = Poller(channels, sink, clock, batch_readings=500, batch_interval_s=BATCH_WALL_S)
    return poller.start(), skipped
