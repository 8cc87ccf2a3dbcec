"""Profile likelihoods computed in the background of the panel process, one thread per job.

A job is keyed by the browser session and what it profiles (session, fit, chip, parameter). The
page starts it, reads its progress (points done / most points possible, elapsed s) on each
refresh, and each read is a heartbeat. The job stops between two profile points when

- the user presses Cancel (``cancel``), or
- no page has asked about it for ``timeout_s`` (the browser tab was closed: nobody would see it).

The thread never touches Streamlit; the page never waits for the thread.

    job = WORKERS.start(key, task)      # task(should_stop, progress) -> Profile
    WORKERS.get(key).status()           # heartbeat, and what to show
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Hashable

from calibration.uncertainty.profile import Profile, ProfileCancelled
from ui.panel.errors import PanelError

TIMEOUT_S = float(os.environ.get("CHIPTWIN_PROFILE_TIMEOUT_S", "30"))  # no heartbeat this long: stop
MAX_RUNNING = 2  # profiles at once in one panel process (each keeps a core busy)
_log = logging.getLogger(__name__)

Task = Callable[[Callable[[], bool], Callable[[int, int], None]], Profile]


@dataclass(frozen=True)
class Status:
    state: str  # running, done, cancelled, abandoned, failed
    done: int
    total: int | None
    elapsed_s: float
    result: Profile | None = None
    error: str = ""

    @property
    def running(self) -> bool:
        return self.state == "running"


class ProfileJob:
    def __init__(self, key: Hashable, task: Task, timeout_s: float, clock: Callable[[], float]) -> None:
        self.key, self._task, self._timeout_s, self._clock = key, task, timeout_s, clock
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._started = self._seen = clock()
        self._ended: float | None = None
        self._state, self._done, self._total = "running", 0, None
        self._result: Profile | None = None
        self._error = ""
        self.thread = threading.Thread(target=self._run, name=f"profile-{key}", daemon=True)

    # the page's side
    def heartbeat(self) -> None:
        with self._lock:
            self._seen = self._clock()

    def cancel(self) -> None:
        self._cancel.set()

    def status(self, heartbeat: bool = True) -> Status:
        with self._lock:
            if heartbeat:
                self._seen = self._clock()
            end = self._ended if self._ended is not None else self._clock()
            return Status(self._state, self._done, self._total, end - self._started, self._result, self._error)

    def idle_s(self) -> float:
        """Seconds since a page last asked about this job."""
        with self._lock:
            return self._clock() - self._seen

    def join(self, timeout: float | None = None) -> bool:
        """True when the thread has ended."""
        self.thread.join(timeout)
        return not self.thread.is_alive()

    # the thread's side
    def _abandoned(self) -> bool:
        return self.idle_s() > self._timeout_s

    def _should_stop(self) -> bool:
        return self._cancel.is_set() or self._abandoned()

    def _progress(self, done: int, total: int) -> None:
        with self._lock:
            self._done, self._total = done, total

    def _run(self) -> None:
        state, result, error = "done", None, ""
        try:
            result = self._task(self._should_stop, self._progress)
        except ProfileCancelled:
            state = "cancelled" if self._cancel.is_set() else "abandoned"
        except PanelError as exc:
            state, error = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - a worker must never die silently
            _log.exception("profile %s failed", self.key)
            state, error = "failed", f"this failed inside ChipTwin ({type(exc).__name__}); see the panel's log"
        with self._lock:
            self._state, self._result, self._error, self._ended = state, result, error, self._clock()
        if state == "abandoned":
            _log.info("profile %s stopped: no page asked about it for %g s", self.key, self._timeout_s)


class ProfileWorkers:
    """The panel process's profile jobs. ``timeout_s`` and ``clock`` are injectable (tests)."""

    def __init__(
        self, timeout_s: float = TIMEOUT_S, max_running: int = MAX_RUNNING, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.timeout_s, self.max_running, self.clock = timeout_s, max_running, clock
        self._jobs: dict[Hashable, ProfileJob] = {}
        self._lock = threading.Lock()

    def start(self, key: Hashable, task: Task) -> ProfileJob:
        """Start ``task`` under ``key``; the job already running under it, if there is one."""
        with self._lock:
            self._prune()
            job = self._jobs.get(key)
            if job is not None and job.thread.is_alive():
                return job
            session = _session(key)
            if any(_session(k) == session and j.thread.is_alive() for k, j in self._jobs.items()):
                raise PanelError("a profile of this session is still running: cancel it or wait for it first")
            if sum(j.thread.is_alive() for j in self._jobs.values()) >= self.max_running:
                raise PanelError(f"the panel is computing {self.max_running} profiles already; try again shortly")
            job = self._jobs[key] = ProfileJob(key, task, self.timeout_s, self.clock)
            job.thread.start()
            return job

    def get(self, key: Hashable) -> ProfileJob | None:
        with self._lock:
            self._prune()
            return self._jobs.get(key)

    def of_session(self, session: Hashable) -> list[ProfileJob]:
        with self._lock:
            return [j for k, j in self._jobs.items() if _session(k) == session]

    def forget(self, key: Hashable) -> None:
        """Drop a finished job (its result was taken); a running one is cancelled first."""
        with self._lock:
            job = self._jobs.pop(key, None)
        if job is not None:
            job.cancel()

    def running(self) -> list[ProfileJob]:
        with self._lock:
            return [j for j in self._jobs.values() if j.thread.is_alive()]

    def stop_all(self, timeout: float = 30.0) -> bool:
        """Cancel every job and wait for the threads; True when none is left running."""
        with self._lock:
            jobs = list(self._jobs.values())
            self._jobs.clear()
        for job in jobs:
            job.cancel()
        deadline = time.monotonic() + timeout
        return all(job.join(max(0.0, deadline - time.monotonic())) for job in jobs)

    def _prune(self) -> None:
        """Finished jobs nobody asked about for ``timeout_s`` go (their session went away)."""
        for key, job in list(self._jobs.items()):
            if not job.thread.is_alive() and job.idle_s() > self.timeout_s:
                del self._jobs[key]


def _session(key: Hashable):
    return key[0] if isinstance(key, tuple) and key else key


WORKERS = ProfileWorkers()
