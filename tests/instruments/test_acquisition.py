"""The acquisition poller on an accelerated clock with scripted sensors: rates without drift,
quality flags, missed slots, batching and the final flush, exactly-once delivery."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator

import pytest

from instruments.acquisition.batch import Batcher
from instruments.acquisition.poller import Channel, Poller, Reading, ReadingQuality, check_sequences
from instruments.capabilities import Measurement
from instruments.clock import AcceleratedClock
from instruments.connection import ConnectionState
from instruments.errors import ConfigError, DeviceTimeout
from store.ingest import Quality

T0 = 1.8e9


@pytest.fixture(autouse=True)
def no_thread_leak() -> Iterator[None]:
    before = threading.active_count()
    yield
    assert threading.active_count() == before, "a poller thread was left running"


class FakeSensor:
    """Scripted: ``values`` by quantity (callables of the call count), errors and delays on demand."""

    def __init__(
        self, name: str, values: dict[str, object], unit: str = "percent", delay_s: float = 0.0, fail: object = None
    ) -> None:
        self.name, self.values, self.unit, self.delay_s = name, values, unit, delay_s
        self.fail = fail or (lambda n: False)
        self.calls = 0

    def identity(self) -> str:
        return self.name

    @property
    def connection_state(self) -> ConnectionState:
        return ConnectionState.OK

    def read(self) -> list[Measurement]:
        n, self.calls = self.calls, self.calls + 1
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail(n):
            raise DeviceTimeout(f"{self.name}: no reply (scripted)")
        return [Measurement(q, v(n) if callable(v) else v, self.unit) for q, v in self.values.items()]

    def close(self) -> None:
        pass


class Collect:
    def __init__(self) -> None:
        self.batches: list[list[Reading]] = []
        self.lock = threading.Lock()

    def __call__(self, batch: list[Reading]) -> None:
        with self.lock:
            self.batches.append(list(batch))

    @property
    def readings(self) -> list[Reading]:
        return [r for batch in self.batches for r in batch]

    def of(self, channel: str) -> list[Reading]:
        return [r for r in self.readings if r.channel == channel]


def run(channels: list[Channel], seconds_real: float, rate: float = 100.0, **options) -> tuple[Collect, object]:
    sink, clock = Collect(), AcceleratedClock.starting_now(rate, T0)
    poller = Poller(channels, sink, clock, **options).start()
    time.sleep(seconds_real)
    stats = poller.stop()
    return sink, stats


def test_quality_flags_are_the_stores() -> None:
    for flag in ReadingQuality:
        assert int(flag) == int(Quality[flag.name])


def test_each_channel_keeps_its_rate_without_drift() -> None:
    sensor = FakeSensor("s", {"a": 1.0, "b": 2.0})
    other = FakeSensor("o", {"c": 3.0})
    channels = [
        Channel("a", sensor, "a", "percent", 1.0),
        Channel("b", sensor, "b", "percent", 2.0),
        Channel("c", other, "c", "percent", 0.5),
    ]
    sink, stats = run(channels, 2.0, rate=20.0)  # 40 clock seconds; periods of 25–100 ms real
    for name, period_s in (("a", 1.0), ("b", 2.0), ("c", 0.5)):
        readings = sink.of(name)
        assert abs(len(readings) - 40 / period_s) <= 3, (name, len(readings))
        # a busy machine may start a slot late: any missed slot shows as a gap and is counted
        missed = stats.channels[name].missed_slots
        assert missed <= 3 and readings[-1].slot - len(readings) + 1 == missed, (name, missed)
        # drift-free: reading k is taken near start + k·period, never accumulating lateness.
        # Drift makes every late reading later; one slow wake-up (a busy machine) makes one
        # reading late: the median of the last five readings tells the two apart.
        start_s = readings[0].t_utc_s
        lateness_s = [r.t_utc_s - (start_s + r.slot * period_s) for r in readings]
        last_five = sorted(lateness_s[-5:])[2]
        assert last_five < 0.4 * period_s + 0.2, (name, last_five, lateness_s)
    assert sensor.calls <= len(sink.of("a")) + len(sink.of("b"))  # one read serves a group
    assert check_sequences(sink.readings, stats).ok


def test_out_of_range_device_error_and_never_nan() -> None:
    # value ramps 0, 10, 20, …; plausible 0–25; reads 4 and 5 fail; read 6 returns NaN
    values = {"x": lambda n: math.nan if n == 6 else 10.0 * n}
    sensor = FakeSensor("s", values, fail=lambda n: n in (4, 5))
    sink, stats = run([Channel("x", sensor, "x", "percent", 1.0, plausible=(0.0, 25.0))], 0.3, rate=50.0)
    first = sink.of("x")[:8]
    assert [r.quality for r in first[:3]] == [0, 0, 0]
    assert first[3].quality == ReadingQuality.OUT_OF_RANGE and first[3].value == 30.0
    for bad in first[4:7]:
        assert bad.quality == ReadingQuality.DEVICE_ERROR | ReadingQuality.STALE
        assert bad.value == 30.0 and bad.error
    assert "non-finite" in first[6].error
    assert first[7].quality == ReadingQuality.OUT_OF_RANGE and first[7].value == 70.0
    assert not any(math.isnan(r.value) for r in sink.readings)
    assert stats.channels["x"].errors == 3 and stats.channels["x"].errors_without_value == 0
    assert stats.channels["x"].ok + stats.channels["x"].out_of_range + 3 == stats.channels["x"].readings


def test_no_reading_before_the_first_good_value() -> None:
    sensor = FakeSensor("s", {"x": 5.0}, fail=lambda n: n < 3)
    sink, stats = run([Channel("x", sensor, "x", "percent", 1.0)], 0.1)
    readings = sink.of("x")
    assert readings[0].seq == 0 and readings[0].value == 5.0 and readings[0].quality == 0
    # polls 0–2 failed: no reading, counted as errors; the good poll 3 is slot 3 unless the machine
    # was too busy to poll some slot on the way (counted missed, never filled in)
    assert 3 <= readings[0].slot <= 3 + stats.channels["x"].missed_slots
    assert stats.channels["x"].errors_without_value == 3


def test_health_hook_sees_every_poll_even_without_a_reading() -> None:
    # reads 0–2 fail before any good value (no reading), read 3 succeeds, read 5 fails again
    sensor = FakeSensor("s", {"x": 5.0}, fail=lambda n: n < 3 or n == 5)
    seen: list[tuple[str, str]] = []
    sink, stats = run([Channel("x", sensor, "x", "percent", 1.0)], 0.15, on_health=lambda c, e: seen.append((c, e)))
    assert len(seen) == stats.channels["x"].polls >= 6
    assert [bool(error) for _, error in seen[:6]] == [True, True, True, False, False, True]
    assert all(channel == "x" for channel, _ in seen) and "no reply (scripted)" in seen[0][1]
    assert len(sink.of("x")) == stats.channels["x"].polls - 3  # the hook saw the three polls with no reading


def test_a_failing_health_hook_does_not_stop_acquisition() -> None:
    def broken(channel: str, error: str) -> None:
        raise RuntimeError("watcher bug")

    sink, stats = run([Channel("x", FakeSensor("s", {"x": 1.0}), "x", "percent", 1.0)], 0.1, on_health=broken)
    assert stats.channels["x"].readings >= 5 and len(sink.of("x")) == stats.channels["x"].readings


def test_missing_quantity_and_unit_conversion() -> None:
    sensor = FakeSensor("s", {"temperature": 37.0}, unit="degC")
    channels = [Channel("t_k", sensor, "temperature", "kelvin", 1.0), Channel("ph", sensor, "pH", "dimensionless", 1.0)]
    sink, stats = run(channels, 0.1)
    assert sink.of("t_k")[0].value == pytest.approx(310.15)
    assert sink.of("ph") == [] and stats.channels["ph"].errors_without_value > 0
    assert "no 'pH'" in stats.channels["ph"].last_error


def test_a_slow_sensor_misses_slots_counted_not_invented() -> None:
    slow = FakeSensor("slow", {"x": 1.0}, delay_s=0.025)  # 2.5 clock s per read at 100×
    sink, stats = run([Channel("x", slow, "x", "percent", 1.0)], 0.5)
    readings, counted = sink.of("x"), stats.channels["x"].missed_slots
    gaps = sum(b.slot - a.slot - 1 for a, b in zip(readings, readings[1:]))
    assert counted >= len(readings)  # about two slots missed per read
    assert gaps == counted - readings[0].slot
    assert [r.seq for r in readings] == list(range(len(readings)))


def test_a_dead_device_delays_only_itself() -> None:
    dead = FakeSensor("dead", {"x": 1.0}, delay_s=0.2, fail=lambda n: n > 0)  # each read: a 0.2 s timeout
    good = FakeSensor("good", {"y": 2.0})
    channels = [Channel("dead", dead, "x", "percent", 0.5), Channel("good", good, "y", "percent", 0.5)]
    sink, stats = run(channels, 1.5, rate=20.0)  # 30 clock s = 60 slots; a dead read = 4 clock s
    # on one worker the dead reads would cost the good channel half its slots (> 30); a busy machine
    # may cost it a few wake-ups of its own (a slot is 25 ms of wall time here)
    assert 50 <= len(sink.of("good")) <= 63 and stats.channels["good"].missed_slots <= 10
    assert stats.channels["dead"].errors >= 3 and stats.channels["dead"].missed_slots > 30
    assert all(r.quality == ReadingQuality.DEVICE_ERROR | ReadingQuality.STALE for r in sink.of("dead")[1:])
    assert stats.workers == 2


def test_batches_flush_every_n_readings() -> None:
    sensor = FakeSensor("s", {"x": 1.0})
    sink, stats = run([Channel("x", sensor, "x", "percent", 0.1)], 0.5, batch_readings=25, batch_interval_s=60)
    sizes = [len(b) for b in sink.batches]
    assert sizes[:-1] and all(size == 25 for size in sizes[:-1]) and sizes[-1] <= 25
    assert stats.sink.delivered == stats.produced == len(sink.readings)


def test_batches_flush_every_t_real_seconds() -> None:
    sink, clock = Collect(), AcceleratedClock.starting_now(100.0, T0)
    channel = Channel("x", FakeSensor("s", {"x": 1.0}), "x", "percent", 1.0)
    with Poller([channel], sink, clock, batch_readings=10**6, batch_interval_s=0.1):
        time.sleep(0.55)
        flushed_while_running = len(sink.batches)
    assert 3 <= flushed_while_running <= 6


def test_stop_flushes_everything_pending() -> None:
    sink, clock = Collect(), AcceleratedClock.starting_now(100.0, T0)
    channel = Channel("x", FakeSensor("s", {"x": 1.0}), "x", "percent", 1.0)
    poller = Poller([channel], sink, clock, batch_readings=10**6, batch_interval_s=3600).start()
    deadline = time.monotonic() + 30.0  # ~0.3 s quiet; a busy machine starts the poller's thread late
    while poller.stats().produced < 25 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sink.batches == []
    stats = poller.stop()
    assert len(sink.batches) == 1 and len(sink.readings) == stats.produced >= 25
    assert poller.undelivered() == []


def test_a_failing_sink_gets_the_batch_again_without_loss_or_duplicates() -> None:
    collected, failures = Collect(), [0]

    def flaky(batch: list[Reading]) -> None:
        if failures[0] < 2:
            failures[0] += 1
            raise OSError("store busy")
        collected(batch)

    clock = AcceleratedClock.starting_now(100.0, T0)
    sensor = FakeSensor("s", {"x": 1.0, "y": 2.0})
    channels = [Channel("x", sensor, "x", "percent", 1.0), Channel("y", sensor, "y", "percent", 1.0)]
    with Poller(channels, flaky, clock, batch_readings=20, batch_interval_s=0.05) as poller:
        time.sleep(0.5)
    stats = poller.stats()
    assert stats.sink.sink_errors == 2 and "store busy" in stats.sink.last_sink_error
    report = check_sequences(collected.readings, stats)
    assert report.ok, report.problems
    assert report.lost == report.duplicated == 0 and sum(report.received.values()) == stats.produced


def test_check_sequences_reports_loss_and_duplicates() -> None:
    sink, stats = run([Channel("x", FakeSensor("s", {"x": 1.0}), "x", "percent", 1.0)], 0.1)
    readings = sink.readings
    damaged = readings[:2] + readings[3:] + readings[4:5]
    report = check_sequences(damaged, stats)
    assert report.lost == 1 and report.duplicated == 1
    assert any("lost seq 2" in p for p in report.problems) and any("duplicated seq 4" in p for p in report.problems)


def test_configuration_errors_are_reported_before_starting() -> None:
    sensor = FakeSensor("s", {"x": 1.0})
    with pytest.raises(ConfigError, match="period_s"):
        Channel("x", sensor, "x", "percent", -1.0)
    with pytest.raises(ConfigError, match="plausible"):
        Channel("x", sensor, "x", "percent", 1.0, plausible=(5.0, 1.0))
    channel = Channel("x", sensor, "x", "percent", 1.0)
    with pytest.raises(ConfigError, match="twice"):
        Poller([channel, channel], Collect(), AcceleratedClock.starting_now(10.0))
    with pytest.raises(ValueError):
        Batcher(Collect(), max_readings=0)


def test_every_slot_is_a_reading_or_a_reported_gap() -> None:
    """The gap hook (the store's poll ledger) with the readings covers each slot once, and each
    reading lies in its slot's interval of the poller's schedule."""
    slow = FakeSensor("slow", {"x": 1.0}, delay_s=0.025)  # misses about two slots a read
    mute = FakeSensor("mute", {"temperature": 37.0}, unit="degC")  # never has a pH
    gaps: list[tuple[str, int, int, str, int]] = []
    sink, clock = Collect(), AcceleratedClock.starting_now(100.0, T0)
    channels = [Channel("x", slow, "x", "percent", 1.0), Channel("ph", mute, "pH", "dimensionless", 1.0)]
    poller = Poller(channels, sink, clock, on_gap=lambda *gap: gaps.append(gap)).start()
    schedule = poller.schedule()
    time.sleep(0.5)
    stats = poller.stop()

    readings = sink.of("x")
    late = [(first, n) for channel, first, n, reason, _ in gaps if channel == "x" and reason == "late"]
    assert sum(n for _, n in late) == stats.channels["x"].missed_slots > 0
    covered = sorted([r.slot for r in readings] + [first + k for first, n in late for k in range(n)])
    assert covered == list(range(len(covered)))  # each slot once: read, or reported skipped
    first_due, period = schedule["x"]
    assert all(first_due + r.slot * period <= r.t_utc_s < first_due + (r.slot + 1) * period for r in readings)
    for channel, first, _n, _reason, before in gaps:  # every reading of an earlier slot was handed over before it
        assert before >= sum(1 for r in sink.readings if r.channel == channel and r.slot < first)
    no_value = sum(n for channel, _, n, reason, _ in gaps if channel == "ph" and reason == "no_value")
    ph_late = sum(n for channel, _, n, reason, _ in gaps if channel == "ph" and reason == "late")
    assert no_value == stats.channels["ph"].errors_without_value > 0 and sink.of("ph") == []
    assert ph_late == stats.channels["ph"].missed_slots  # a busy machine may skip some of its slots too


def test_the_schedule_is_handed_over_before_the_first_poll() -> None:
    """The runner stores a session's slot grid from ``on_schedule``: it must come before any poll
    (a runner killed right after its first batch must leave a grid for the ledger to count by)."""
    sink, clock = Collect(), AcceleratedClock.starting_now(100.0, T0)
    polled_before: list[int] = []
    channel = Channel("x", FakeSensor("s", {"x": 1.0}), "x", "percent", 1.0)

    def on_schedule(grid: dict[str, tuple[float, float]]) -> None:
        time.sleep(0.2)  # a slow store: the workers must still wait for it
        polled_before.append(len(sink.readings))
        assert set(grid) == {"x"}

    poller = Poller([channel], sink, clock, batch_interval_s=0.01).start(on_schedule)
    deadline = time.monotonic() + 10.0
    while not sink.readings and time.monotonic() < deadline:
        time.sleep(0.01)
    poller.stop()
    assert polled_before == [0] and sink.readings  # handed over once, before any reading; polling went on
