"""The run's control state, shared by the step thread, the request watcher and the interlocks.

Steps never sleep blindly: ``Control.sleep_until(t)`` waits on the shared clock in short
wall-clock slices, stops at once while the run is paused or parked (and extends the step's
deadline by the time spent stopped, so a resumed step continues where it was), and raises
``Aborted`` when an abort arrives. A pause or park puts every instrument in its safe state
*before* it returns, from whichever thread asked.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from protocols.errors import ProtocolError

SLICE_WALL_S = 0.02


class Aborted(ProtocolError, RuntimeError):
    """The run was aborted (request, interlock or hold timeout); instruments are in their safe state."""


class Control:
    def __init__(self, clock: Any, safe_state: Callable[[], dict]) -> None:
        self.clock, self._safe_state = clock, safe_state
        self.state = "running"
        self.why = ""
        self.safe_state_log: list[tuple[float, str]] = []  # (clock time, why)
        self.decisions: dict[int, dict] = {}  # proposal id -> {"decision", "actor", "reason"}
        self._changed = threading.Condition()

    # -- requests (any thread) ----------------------------------------------------------
    def stop(self, state: str, why: str) -> dict:
        """Pause, park or abort: safe state first, then the new state. Returns safe-state errors."""
        errors = self._safe_state()
        with self._changed:
            self.safe_state_log.append((self.clock.now_s(), why))
            if self.state != "aborted":
                self.state, self.why = state, why
            self._changed.notify_all()
        return errors

    def resume(self) -> bool:
        with self._changed:
            if self.state not in ("paused", "parked"):
                return False
            self.state, self.why = "running", ""
            self._changed.notify_all()
            return True

    def decide(self, proposal_id: int, decision: dict) -> None:
        with self._changed:
            self.decisions[proposal_id] = decision
            self._changed.notify_all()

    # -- the step thread ----------------------------------------------------------------
    def check(self) -> float:
        """Block while stopped; raise Aborted. Returns the clock seconds spent stopped."""
        stopped_at = None
        with self._changed:
            while self.state in ("paused", "parked"):
                stopped_at = stopped_at or self.clock.now_s()
                self._changed.wait(0.05)
            if self.state == "aborted":
                raise Aborted(self.why or "aborted")
        return 0.0 if stopped_at is None else self.clock.now_s() - stopped_at

    def sleep_until(self, deadline_s: float) -> float:
        """Wait until clock time ``deadline_s`` (+ any time stopped); returns the deadline reached."""
        while True:
            deadline_s += self.check()
            self._advance_until(deadline_s)
            left_s = deadline_s - self.clock.now_s()
            if left_s <= 0:
                return deadline_s
            with self._changed:
                self._changed.wait(min(left_s / self.clock.rate, SLICE_WALL_S))

    def wait_for(self, predicate: Callable[[], Any], deadline_s: float, poll_wall_s: float = 0.1) -> Any:
        """Until ``predicate()`` is truthy (returned) or clock ``deadline_s`` (None); pauses extend it."""
        while True:
            deadline_s += self.check()
            self._advance_until(deadline_s)
            found = predicate()
            if found:
                self._advance_until(self.clock.now_s())  # a stepped clock stops here, at 1x
                return found
            if self.clock.now_s() >= deadline_s:
                return None
            time.sleep(poll_wall_s)

    def _advance_until(self, deadline_s: float) -> None:
        """A stepped shared clock (instruments.clock.SharedClock) runs fast only while the steps wait,
        and lands on the deadline exactly: the same protocol gives the same times on any machine."""
        advance = getattr(self.clock, "advance_until", None)
        if advance is not None:
            advance(deadline_s)
