"""The runner's side of the acquisition poller: which channels to poll, and the sink.

Every rig channel whose instrument is a sensor is polled at its period. Pump
``dispensed`` channels are not polled (the pump's serial line belongs to dosing); the
intent log writes the pump's readback as a reading of that channel after each dose.
The sink hands each batch to the interlock monitor first, then stores it (one
transaction per batch, idempotent on (channel, time)).
"""

from __future__ import annotations

from typing import Any

from instruments.acquisition import Channel as PollChannel, Poller, Reading
from instruments.rig import Rig
from protocols.interlocks_runtime import Monitor
from protocols.record import Recorder
from store.ingest import ReadingIn, ingest_readings

BATCH_WALL_S = 0.05


class StoreSink:
    def __init__(self, recorder: Recorder, channel_ids: dict[str, int], monitor: Monitor) -> None:
        self.recorder, self.channel_ids, self.monitor = recorder, channel_ids, monitor
        self.stored = 0

    def __call__(self, batch: list[Reading]) -> None:
        self.monitor.feed(batch)
        rows = [ReadingIn(self.channel_ids[r.channel], r.t_utc_s, r.value, r.quality) for r in batch]
        with self.recorder._lock:
            self.stored += ingest_readings(self.recorder.engine, rows).stored


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
