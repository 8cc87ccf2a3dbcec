"""The run's control state, shared by the step thread, the request watcher and the interlocks.

Steps never sleep blindly: ``Control.sleep_until(t)`` waits on the shared clock in short
wall-clock slices, stops at once while the run is paused or parked (and extends the step's
deadline by the time spent stopped, so a resumed step continues where it was), and raises
``Aborted`` when an abort arrives. A pause or park puts every instrument in its safe state
*before* it returns, from whichever thread asked.

On a stepped clock (``SharedClock.create(..., stepped=True)``, the demo's) simulated time runs
only inside these waits: the clock runs at its rate to the next stop — the deadline, or a poll
slot of ``landings`` (protocols.run.landings) — and lands there exactly, so sample times,
readings the loop uses and hold_until's outcome are the same on a fast or a busy machine.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Callable

from protocols.errors import ProtocolError

SLICE_WALL_S = 0.02
STEP_SLICE_WALL_S = 0.002  # a stepped clock's waits re-read the stops this often (a paced poll moves them)


class Aborted(ProtocolError, RuntimeError):
    """The run was aborted (request, interlock or hold timeout); instruments are in their safe state."""


class ParkedUnattended(ProtocolError, RuntimeError):
    """The run was parked where no person can resume it (``Control.parked_ends_run``): it ends parked."""


class Control:
    def __init__(self, clock: Any, safe_state: Callable[[], dict]) -> None:
        self.clock, self._safe_state = clock, safe_state
        self.state = "running"
        self.why = ""
        self.safe_state_log: list[tuple[float, str]] = []  # (clock time, why)
        self.decisions: dict[int, dict] = {}  # proposal id -> {"decision", "actor", "reason"}
        self._changed = threading.Condition()
        self.landings: Any = None  # protocols.run.landings.Landings, set once the poller runs
        # True where nobody can resume a parked run (`chiptwin demo --no-panel`): parking ends the run
        self.parked_ends_run = False

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
                if self.state == "parked" and self.parked_ends_run:
                    raise ParkedUnattended(self.why or "parked")
                stopped_at = stopped_at or self.clock.now_s()
                self._changed.wait(0.05)
            if self.state == "aborted":
                raise Aborted(self.why or "aborted")
        return 0.0 if stopped_at is None else self.clock.now_s() - stopped_at

    def sleep_until(self, deadline_s: float) -> float:
        """Wait until clock time ``deadline_s`` (+ any time stopped); returns the deadline reached."""
        if self.stepped:
            return self._stepped_wait(deadline_s, None, SLICE_WALL_S)
        while True:
            deadline_s += self.check()
            left_s = deadline_s - self.clock.now_s()
            if left_s <= 0:
                return deadline_s
            with self._changed:
                self._changed.wait(min(left_s / self.clock.rate, SLICE_WALL_S))

    def wait_for(self, predicate: Callable[[], Any], deadline_s: float, poll_wall_s: float = 0.1) -> Any:
        """Until ``predicate()`` is truthy (returned) or clock ``deadline_s`` (None); pauses extend it."""
        if self.stepped:
            return self._stepped_wait(deadline_s, predicate, poll_wall_s)
        while True:
            deadline_s += self.check()
            found = predicate()
            if found:
                return found
            if self.clock.now_s() >= deadline_s:
                return None
            time.sleep(poll_wall_s)

    def elapse_until(self, t_s: float) -> None:
        """Let a stepped clock run to ``t_s`` (a pump's dispense); no pause or abort is taken here, so a
        dose in flight finishes first. A no-op on any other clock: there the time passes by itself."""
        if self.stepped:
            self._stepped_wait(t_s, None, SLICE_WALL_S, checked=False)

    @property
    def stepped(self) -> bool:
        return bool(getattr(self.clock, "stepped", False))

    def _stepped_wait(
        self, deadline_s: float, predicate: Callable[[], Any] | None, poll_wall_s: float, *, checked: bool = True
    ) -> Any:
        """Run the clock stop by stop (a landing slot or the deadline); after each landing its readings
        are in (``Landings.settle``) before ``predicate`` is asked. A predicate is also asked while the
        clock runs, so a person's decision is heard at once; one fed by landing readings only changes
        at the stops, so its outcome lands on the same clock time on every machine."""
        asked_wall_s = 0.0
        while True:
            deadline_s += self.check() if checked else 0.0
            stop_s = self._next_stop(deadline_s)
            self.clock.advance_until(stop_s)
            while (now_s := self.clock.now_s()) < stop_s:
                if predicate is not None and time.monotonic() - asked_wall_s >= poll_wall_s:
                    asked_wall_s = time.monotonic()
                    if found := predicate():
                        self.clock.advance_until(self.clock.now_s())  # stop here, at 1x
                        return found
                with self._changed:
                    self._changed.wait(min((stop_s - now_s) / self.clock.rate, STEP_SLICE_WALL_S))
                if checked and (stopped_s := self.check()) > 0:
                    deadline_s += stopped_s
                if (later_s := self._next_stop(deadline_s)) != stop_s:  # a paced poll came: run on
                    stop_s = later_s
                    self.clock.advance_until(stop_s)
            if self.landings is not None and self.landings.next_s() <= stop_s:
                self.landings.settle(stop_s)
            if predicate is not None and (found := predicate()):
                return found
            if stop_s >= deadline_s:
                return deadline_s if predicate is None else None

    def _next_stop(self, deadline_s: float) -> float:
        landing_s = self.landings.next_s() if self.landings is not None else math.inf
        return min(deadline_s, max(landing_s, self.clock.now_s()))
