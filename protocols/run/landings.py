"""Where a stepped clock stops besides a step's own deadline: poll slots, and interlocks' readings.

A stepped ``SharedClock`` runs fast only while a step waits, and lands on the step's deadline.
Two more kinds of stop:

* *exact* slots: readings the loop uses must not depend on when a poll thread happened to wake,
  so the clock lands on their due time and waits until they are read and delivered — the TEER
  readings (the fit's viability, ``protocols.loop.lab_data``) always, and the channels a
  ``hold_until`` watches while it waits;
* *paced* channels: an interlock must see however fast the clock runs, so the clock never runs
  more than ``PACE_PERIODS`` poll periods past a paced channel's last *good reading delivered to
  the interlocks* (what their blind watchdog counts; its grace is five periods). At such a stop the
  clock waits until the channel's next good reading is delivered.

A paced channel whose device fails is retried at each of its slots, and the clock waits for each
poll (its timeouts and retries take wall seconds). Once its driver has declared the device lost (it
is probed again only after a back-off of wall seconds), or its retries have used its slots up to
``PACE_PERIODS``, each of its next slots is approached at 1x for the last ``PACE_WAIT_WALL_S``, so
that the device has that long to answer before it is polled again. A sensor dead for good thus costs
``PACE_WAIT_WALL_S`` a slot until its interlock's grace has passed on the clock: the interlock goes
blind and acts after a bounded wall time. A stop whose poll never comes (a stuck worker) gives the
channel up after ``PACE_WAIT_WALL_S`` plus one poll (not waited for until it reads well again).

A landing waits at most ``SETTLE_WALL_S`` of wall time for its poll, then gives that slot up.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Collection, Mapping

SETTLE_WALL_S = 10.0  # a landing waits at most this long for its poll (a device's timeouts and retries)
PACE_PERIODS = 4.0  # an interlock's channel may lag the clock by this many poll periods from its last good
# delivered reading: its blind grace is five, so one period of 1x crawl is left for a stop's waits
PACE_WAIT_WALL_S = 5.0  # a failing channel past its pacing gets this long (at 1x) before each next poll;
# a stepped clock is the simulated rig's, whose drivers probe a lost device after 2 s (protocols.demo.setup)
POLL_WALL_S = 5.0  # one poll with its retries (three attempts with 1 s timeouts, and back-off between them)
LOST_ERROR_PREFIX = "DeviceLost"  # a poll's error when the driver backs off a lost device (instruments.errors)
PACE_SLICE_WALL_S = 0.001
FIT_MEASUREMENT_PREFIX = "teer."  # the readings the calibrate step fits (viability from TEER)

LastGood = Callable[[str], "float | None"]  # channel -> clock time of its last good delivered reading


class Landings:
    """The slots of ``exact`` channels (and any added for a while) a stepped clock lands on, and the
    ``paced`` channels (name -> poll period, s) it does not outrun; ``last_good_s(channel)`` is the
    clock time of the channel's last good reading delivered to the interlocks (None: not known)."""

    def __init__(
        self,
        poller: Any,
        exact: Collection[str],
        paced: Mapping[str, float] | None = None,
        last_good_s: LastGood | None = None,
    ) -> None:
        self.poller = poller
        polled = {c.name for c in getattr(poller, "channels", ())}
        self.exact = set(exact)
        self.paced = {c: p for c, p in (paced or {}).items() if c in polled and p > 0}
        self.last_good_s: LastGood = last_good_s or (lambda channel: None)
        self.extra: set[str] = set()
        self.given_up_s = -math.inf  # a slot that never came (a stuck poll): not waited for again
        self.given_up: dict[str, float | None] = {}  # paced channel -> its last good reading when given up
        self.pace_wait_wall_s = PACE_WAIT_WALL_S
        self.failing: Callable[[], Mapping[str, str]] = dict  # channel -> its last poll's error, while failing

    def _exact(self) -> set[str]:
        """Exact channels, and paced ones that are failing or given up: their device is retried at each
        of their slots while the clock waits (its timeouts and retries take wall seconds)."""
        troubled = set(self.failing()) | set(self.given_up)
        return self.exact | self.extra | {c for c in troubled if c in self.paced}

    def next_s(self) -> float:
        """The clock time of the next stop (inf: none)."""
        exact = self.poller.next_due_s(self._exact(), after_s=self.given_up_s) if self._exact() else math.inf
        return min(exact, self.paced_until_s())

    def paced_until_s(self) -> float:
        """How far the paced channels let the clock run (``_bound_s`` of each one not given up)."""
        bound = math.inf
        failing = self.failing()
        for channel, period_s in self.paced.items():
            good_s = self.last_good_s(channel)
            if good_s is None or self.given_up.get(channel, math.nan) == good_s:
                continue
            self.given_up.pop(channel, None)  # it read well since it was given up: paced again
            bound = min(bound, self._bound_s(channel, period_s, good_s, failing.get(channel, "")))
        return bound

    def _bound_s(self, channel: str, period_s: float, good_s: float, error: str) -> float:
        """``PACE_PERIODS`` past the last good reading. A failing channel whose next slot is past that (its
        retries used the slots before), or whose device is lost (probed again only after a wall-time
        back-off), is approached at 1x for ``pace_wait_wall_s`` before its next slot instead, so that the
        device gets that long to answer before it is polled again."""
        bound_s = good_s + PACE_PERIODS * period_s
        if error:
            due_s = self.poller.next_due_s([channel])
            if error.startswith(LOST_ERROR_PREFIX) or due_s > bound_s:
                return due_s - self.pace_wait_wall_s
        return bound_s

    def settle(self, t_s: float) -> bool:
        """Until the slots stopping the clock at ``t_s`` are read and delivered (True), or the wall bounds."""
        settled = self._settle_exact(t_s)
        if self.paced_until_s() <= t_s:
            settled = self._settle_paced(t_s) and settled
        return bool(self.poller.wait_delivered(SETTLE_WALL_S)) and settled

    def _settle_exact(self, t_s: float) -> bool:
        deadline = time.monotonic() + SETTLE_WALL_S
        exact = self._exact()
        while not self.poller.polled_through(exact, t_s):
            if time.monotonic() >= deadline:
                self.given_up_s = t_s
                return False
            time.sleep(0.001)
        return True

    def _settle_paced(self, t_s: float) -> bool:
        """Until every paced channel the clock may not pass yet has a good reading delivered; one still
        without after ``pace_wait_wall_s`` (and a poll) is given up. The others' polls due now are not
        waited for: they are read as the clock runs on (a simulated O2 read advances its chip's model)."""
        deadline = time.monotonic() + self.pace_wait_wall_s + POLL_WALL_S
        while True:
            # hurry the batch: the interlocks see a reading when it is delivered, not when it is polled
            if self.poller.wait_delivered(0.0) and self.paced_until_s() > t_s:
                return True
            if time.monotonic() >= deadline:
                for channel in self._behind(t_s):
                    self.given_up[channel] = self.last_good_s(channel)
                return False
            time.sleep(PACE_SLICE_WALL_S)

    def _behind(self, t_s: float) -> list[str]:
        failing = self.failing()
        return [
            c
            for c, period_s in self.paced.items()
            if c not in self.given_up
            and (good := self.last_good_s(c)) is not None
            and self._bound_s(c, period_s, good, failing.get(c, "")) <= t_s
        ]

    def catch_up(self, t_s: float) -> bool:
        """Until every exact slot due by ``t_s`` is read and everything polled so far is delivered."""
        settled = self.settle(t_s)
        return bool(self.poller.wait_delivered(SETTLE_WALL_S)) and settled


def fit_channels(rig: Any) -> set[str]:
    """The rig's channels whose readings the calibrate step fits, and that are polled on a schedule."""
    return {c.name for c in rig.channels if c.measurement.startswith(FIT_MEASUREMENT_PREFIX) and c.poll_period_s > 0}
