"""Where a stepped clock stops besides a step's own deadline: poll slots.

A stepped ``SharedClock`` runs fast only while a step waits, and lands on the step's deadline.
Two kinds of poll slots stop it too:

* *exact* slots: readings the loop uses must not depend on when a poll thread happened to wake,
  so the clock lands on their due time and waits until they are read and delivered — the TEER
  readings (the fit's viability, ``protocols.loop.lab_data``) always, and the channels a
  ``hold_until`` watches while it waits;
* *paced* slots: the channels an interlock watches must be read however fast the clock runs,
  so the clock never runs more than ``PACE_PERIODS`` poll periods past a slot not yet read (a
  bus that cannot keep up slows the clock instead of going blind; the grace is five periods).

A landing waits at most ``SETTLE_WALL_S`` of wall time for its poll, then gives that slot up.
"""

from __future__ import annotations

import math
import time
from typing import Any, Collection

SETTLE_WALL_S = 10.0  # a landing waits at most this long for its poll (a device's timeouts and retries)
PACE_PERIODS = 2.0  # an interlock's channel may lag the clock by this many poll periods: its blind grace
# is five (protocols.run.interlocks.grace_s), and a reading reaches the watchdog a batch (50 ms wall) late
FIT_MEASUREMENT_PREFIX = "teer."  # the readings the calibrate step fits (viability from TEER)


class Landings:
    """The slots of ``exact`` channels (and any added for a while) a stepped clock lands on, and the
    ``paced`` channels it does not outrun."""

    def __init__(self, poller: Any, exact: Collection[str], paced: Collection[str] = ()) -> None:
        self.poller = poller
        self.exact, self.paced = set(exact), set(paced)
        self.extra: set[str] = set()
        self.given_up_s = -math.inf  # a slot that never came (a stuck poll): not waited for again

    def _exact(self) -> set[str]:
        return self.exact | self.extra

    def next_s(self) -> float:
        """The clock time of the next stop (inf: none)."""
        exact = self.poller.next_due_s(self._exact(), after_s=self.given_up_s) if self._exact() else math.inf
        paced = (
            self.poller.next_due_s(self.paced, after_s=self.given_up_s, late_periods=PACE_PERIODS)
            if self.paced
            else math.inf
        )
        return min(exact, paced)

    def settle(self, t_s: float) -> bool:
        """Until the slots stopping the clock at ``t_s`` are read and delivered (True), or SETTLE_WALL_S."""
        deadline = time.monotonic() + SETTLE_WALL_S
        exact = self._exact()
        while not (
            self.poller.polled_through(exact, t_s) and self.poller.polled_through(self.paced, t_s, PACE_PERIODS)
        ):
            if time.monotonic() >= deadline:
                self.given_up_s = t_s
                return False
            time.sleep(0.001)
        # a paced stop too: the watchdog counts delivered readings, and the clock must not run past them
        return bool(self.poller.wait_delivered(max(deadline - time.monotonic(), 0.0)))

    def catch_up(self, t_s: float) -> bool:
        """Until every exact slot due by ``t_s`` is read and everything polled so far is delivered."""
        settled = self.settle(t_s)
        return bool(self.poller.wait_delivered(SETTLE_WALL_S)) and settled


def fit_channels(rig: Any) -> set[str]:
    """The rig's channels whose readings the calibrate step fits, and that are polled on a schedule."""
    return {c.name for c in rig.channels if c.measurement.startswith(FIT_MEASUREMENT_PREFIX) and c.poll_period_s > 0}
