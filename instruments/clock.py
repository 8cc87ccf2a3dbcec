"""One clock for the runner and the simulated rig: real, or accelerated (3600× = an hour a second).

Every timestamp the runner stores comes from a clock's ``now_s()`` (seconds since the Unix
epoch, UTC). An accelerated clock is defined by three numbers — its rate, the simulated
time it started at, and the real (wall) time it started — so two processes that share
those numbers (the sim-rig writes them into its endpoints file) share the same time.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import mmap
import os
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    @property
    def rate(self) -> float:
        """Clock seconds per wall-clock second (1 = real time)."""

    def now_s(self) -> float:
        """Current (possibly simulated) time, seconds since the Unix epoch, UTC."""

    def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds`` of clock time."""

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        """Wait for ``event`` at most ``timeout_s`` of clock time; True if it was set."""


class RealClock:
    rate = 1.0

    def now_s(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(seconds, 0.0))

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        return event.wait(max(timeout_s, 0.0))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "real"}


@dataclass(frozen=True)
class AcceleratedClock:
    """Simulated time runs ``rate`` times faster than the wall clock, from ``start_utc_s``."""

    rate: float = 3600.0
    start_utc_s: float = 0.0
    anchor_unix_s: float = 0.0

    @classmethod
    def starting_now(cls, rate: float, start_utc_s: float | None = None) -> "AcceleratedClock":
        if rate <= 0:
            raise ValueError(f"clock rate {rate} must be positive (1 = real time, 3600 = an hour a second)")
        wall = time.time()
        return cls(float(rate), wall if start_utc_s is None else float(start_utc_s), wall)

    def now_s(self) -> float:
        return self.start_utc_s + (time.time() - self.anchor_unix_s) * self.rate

    def sleep(self, seconds: float) -> None:
        time.sleep(max(seconds, 0.0) / self.rate)

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        return event.wait(max(timeout_s, 0.0) / self.rate)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "accelerated",
            "rate": self.rate,
            "start_utc_s": self.start_utc_s,
            "anchor_unix_s": self.anchor_unix_s,
        }


# -- the shared clock: held while the runner computes --------------------------------------

# seq (even = consistent), rate, sim anchor (s), wall anchor (s), until (sim s, inf = none), holds
_LAYOUT = struct.Struct("<Qddddq")
WAIT_SLICE_WALL_S = 0.01  # a waiter re-reads the clock this often, so a release is seen at once


@dataclass(frozen=True)
class ClockState:
    """One consistent reading of a shared clock's file."""

    rate: float  # simulated seconds per wall second while running
    sim_anchor_s: float  # simulated time (Unix s, UTC) at ``wall_anchor_s``
    wall_anchor_s: float  # wall time (Unix s) of the last change
    until_s: float  # running stops here and the clock crawls at 1x (math.inf: never)
    holds: int  # > 0: held (1x) by that many compute steps

    def now_s(self, wall_s: float) -> float:
        elapsed_s = max(wall_s - self.wall_anchor_s, 0.0)
        if self.holds > 0 or self.sim_anchor_s >= self.until_s:
            return self.sim_anchor_s + elapsed_s
        run_wall_s = (self.until_s - self.sim_anchor_s) / self.rate  # wall seconds until ``until_s``
        if elapsed_s <= run_wall_s:
            return self.sim_anchor_s + elapsed_s * self.rate
        return self.until_s + (elapsed_s - run_wall_s)

    def rate_now(self, wall_s: float) -> float:
        """Simulated seconds per wall second at ``wall_s``: 1 while held or arrived, else the rate."""
        if self.holds > 0 or self.now_s(wall_s) >= self.until_s:
            return 1.0
        return self.rate


class SharedClock:
    """Accelerated time in a small memory-mapped file that any number of processes open.

    The runner *holds* it while it computes (``with clock.held(): fit()``): simulated time then
    advances at 1x — the compute step is charged its real duration, not rate x duration — so a
    slow or busy machine gives the same readings, doses and estimates as a fast one. With
    ``advance_until(t)`` the runner's sleeps run at the rate and *land* on ``t`` exactly (then
    1x until the next sleep): simulated time moves fast only while the protocol waits.
    Writers take an ``fcntl`` lock; readers use a sequence number (seqlock), so a reader never
    sees half a change and never blocks.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        fd = os.open(self.path, os.O_RDWR)
        try:
            self._map = mmap.mmap(fd, _LAYOUT.size)
        finally:
            os.close(fd)

    @classmethod
    def create(
        cls, path: str | Path, rate: float, start_utc_s: float | None = None, *, stepped: bool = False
    ) -> SharedClock:
        """A new clock file at ``path`` (replaced atomically). ``stepped``: arrived from the start,
        so simulated time runs fast only inside ``advance_until`` (the demo's reproducible mode)."""
        if not rate > 0:
            raise ValueError(f"clock rate {rate} must be positive (1 = real time, 3600 = an hour a second)")
        wall = time.time()
        sim = wall if start_utc_s is None else float(start_utc_s)
        path = Path(path)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_bytes(_LAYOUT.pack(0, float(rate), sim, wall, sim if stepped else math.inf, 0))
        os.replace(temporary, path)  # another process never opens a half-written file
        return cls(path)

    # -- reading (never blocks) ---------------------------------------------------------
    def state(self) -> ClockState:
        while True:
            seq, *fields = _LAYOUT.unpack_from(self._map)
            if seq % 2 == 0 and _LAYOUT.unpack_from(self._map)[0] == seq:
                return ClockState(*fields)
            time.sleep(0)  # a writer is mid-change: let it finish

    @property
    def rate(self) -> float:
        return self.state().rate

    @property
    def stepped(self) -> bool:
        """Simulated time runs only inside ``advance_until`` (a free-running clock runs by itself)."""
        return self.state().until_s != math.inf

    @property
    def is_held(self) -> bool:
        return self.state().holds > 0

    def now_s(self) -> float:
        return self.state().now_s(time.time())

    def sleep(self, seconds: float) -> None:
        self.wait(threading.Event(), seconds)

    def wait(self, event: threading.Event, timeout_s: float) -> bool:
        """Wait in short wall slices, re-reading the clock: a hold or release elsewhere counts at once."""
        deadline_s = self.now_s() + max(timeout_s, 0.0)
        while True:
            state, wall_s = self.state(), time.time()
            left_s = deadline_s - state.now_s(wall_s)
            if left_s <= 0:
                return event.is_set()
            if event.wait(min(left_s / state.rate_now(wall_s), WAIT_SLICE_WALL_S)):
                return True

    # -- changing (one writer at a time, any process) -------------------------------------
    @contextlib.contextmanager
    def _change(self) -> Iterator[tuple[ClockState, float]]:
        with open(self.path, "rb") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                state, wall_s = self.state(), time.time()
                yield state, wall_s
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _write(self, state: ClockState, wall_s: float, *, until_s: float, holds: int) -> None:
        """Re-anchor at ``wall_s`` (simulated time is continuous across every change)."""
        seq = _LAYOUT.unpack_from(self._map)[0]
        packed = _LAYOUT.pack(seq + 2, state.rate, state.now_s(wall_s), wall_s, until_s, holds)
        struct.pack_into("<Q", self._map, 0, seq + 1)  # odd: readers retry
        self._map[8 : _LAYOUT.size] = packed[8:]
        struct.pack_into("<Q", self._map, 0, seq + 2)

    def hold(self) -> None:
        with self._change() as (state, wall_s):
            self._write(state, wall_s, until_s=state.until_s, holds=state.holds + 1)

    def release(self) -> None:
        with self._change() as (state, wall_s):
            self._write(state, wall_s, until_s=state.until_s, holds=max(state.holds - 1, 0))

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.hold()
        try:
            yield
        finally:
            self.release()

    def advance_until(self, target_s: float) -> None:
        """Run at the rate until simulated ``target_s``, then crawl at 1x (a sleep that lands exactly).
        Only a stepped clock lands; a free-running one (``until_s`` infinite) ignores this."""
        if self.state().until_s == math.inf:  # free-running, and it stays so: no lock, no file opened
            return
        with self._change() as (state, wall_s):
            if state.until_s != target_s and state.until_s != math.inf:  # free-running: no landing
                self._write(state, wall_s, until_s=max(target_s, state.now_s(wall_s)), holds=state.holds)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "shared", "path": str(self.path)}

    def close(self) -> None:
        self._map.close()


def holding(clock: Any) -> contextlib.AbstractContextManager[None]:
    """``clock.held()`` for a clock that can be held; a no-op for the others (real, accelerated)."""
    held = getattr(clock, "held", None)
    return held() if held is not None else contextlib.nullcontext()


def clock_from_dict(document: dict[str, Any]) -> RealClock | AcceleratedClock | SharedClock:
    """The clock another process described with ``to_dict()``."""
    if document.get("kind", "real") == "real":
        return RealClock()
    if document["kind"] == "shared":
        return SharedClock(document["path"])
    return AcceleratedClock(float(document["rate"]), float(document["start_utc_s"]), float(document["anchor_unix_s"]))
