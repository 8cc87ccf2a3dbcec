"""Batching between the poll workers and the sink: flush every N readings or T real seconds.

Workers ``add`` readings (thread-safe, never blocking on the sink); one flusher thread
calls the sink, so the sink need not be thread-safe and sees each channel's readings in
order. A batch is handed over when ``max_readings`` are pending or the oldest pending
reading has waited ``max_age_s`` of *real* (wall) time, whichever comes first; ``stop``
flushes everything left. If the sink raises, the batch is kept (in order, at the front)
and offered again after ``max_age_s``: readings are never dropped, and a reading is
delivered twice only if the sink itself raised after storing it (the store's ingest is
idempotent on (channel, time), so re-sending is harmless there).
"""

from __future__ import annotations

import threading
import time
from collections import deque

from instruments.acquisition.types import Reading, Sink, SinkStats

FINAL_FLUSH_ATTEMPTS = 3


class Batcher:
    def __init__(self, sink: Sink, max_readings: int = 500, max_age_s: float = 1.0) -> None:
        if max_readings < 1:
            raise ValueError(f"max_readings must be at least 1, not {max_readings}")
        if max_age_s <= 0:
            raise ValueError(f"max_age_s must be positive (real seconds), not {max_age_s}")
        self.sink, self.max_readings, self.max_age_s = sink, max_readings, max_age_s
        self.stats = SinkStats()
        self._pending: deque[Reading] = deque()
        self.added = 0  # readings ever added (delivered catches up with it)
        self._hurry = False  # wait_delivered asks for the pending readings now
        self._oldest_at_s = 0.0
        self._retry_at_s = 0.0
        self._stopping = False
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="acquisition-flush", daemon=True)
        self._thread.start()

    def add(self, readings: list[Reading]) -> None:
        if not readings:
            return
        with self._condition:
            if not self._pending:
                self._oldest_at_s = time.monotonic()
            self._pending.extend(readings)
            self.added += len(readings)
            if len(self._pending) >= self.max_readings:
                self._condition.notify()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Flush what is pending (final flush) and join the flusher thread."""
        with self._condition:
            self._stopping = True
            self._condition.notify()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise RuntimeError(f"the acquisition sink did not return within {timeout_s} s of stop()")
            self._thread = None

    def wait_delivered(self, count: int, timeout_s: float) -> bool:
        """Until the sink has taken the first ``count`` readings ever added (True), or ``timeout_s`` wall."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._condition:
                if self.stats.delivered >= count:
                    return True
                self._hurry = True  # hand them over now, not after max_age_s
                self._condition.notify()
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.002)

    def undelivered(self) -> list[Reading]:
        """Readings the sink refused even at the final flush (empty after a clean stop)."""
        with self._condition:
            return list(self._pending)

    def snapshot(self) -> SinkStats:
        with self._condition:
            stats = SinkStats(**vars(self.stats))
            stats.pending = len(self._pending)
            return stats

    def _due(self) -> bool:
        if not self._pending or time.monotonic() < self._retry_at_s:
            return False
        return (
            self._hurry
            or len(self._pending) >= self.max_readings
            or time.monotonic() - self._oldest_at_s >= self.max_age_s
        )

    def _wait_s(self) -> float:
        if not self._pending:
            return self.max_age_s
        deadline_s = max(self._oldest_at_s + self.max_age_s, self._retry_at_s)
        return max(deadline_s - time.monotonic(), 0.001)

    def _run(self) -> None:
        while True:
            with self._condition:
                while not (self._stopping or self._due()):
                    self._condition.wait(self._wait_s())
                if self._stopping:
                    break
                batch = self._take()
            self._deliver(batch)
        self._final_flush()

    def _take(self) -> list[Reading]:
        size = min(len(self._pending), self.max_readings)
        batch = [self._pending.popleft() for _ in range(size)]
        self._hurry = bool(self._pending) and self._hurry
        self._oldest_at_s = time.monotonic()  # the rest waited less; restart their clock
        return batch

    def _deliver(self, batch: list[Reading]) -> bool:
        try:
            self.sink(batch)
        except Exception as exc:  # noqa: BLE001 - any sink failure: keep the batch, retry later
            with self._condition:
                self._pending.extendleft(reversed(batch))
                self.stats.sink_errors += 1
                self.stats.last_sink_error = f"{type(exc).__name__}: {exc}"
                self._retry_at_s = time.monotonic() + self.max_age_s
            return False
        with self._condition:
            self.stats.batches += 1
            self.stats.delivered += len(batch)
            self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        return True

    def _final_flush(self) -> None:
        failures = 0
        while failures < FINAL_FLUSH_ATTEMPTS:
            with self._condition:
                if not self._pending:
                    return
                batch = self._take()
            if not self._deliver(batch):
                failures += 1
