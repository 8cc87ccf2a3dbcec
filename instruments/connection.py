"""A device connection's health, visible: OK → degraded → reconnecting → lost.

Transports report each attempt's outcome; the state machine decides the state and the
back-off before the next attempt. A lost device keeps being retried at the longest
back-off (it may come back), but never blocks anyone else: callers get DeviceLost at once
instead of waiting on a dead port.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass, field
from typing import Callable


class ConnectionState(str, enum.Enum):
    OK = "ok"
    DEGRADED = "degraded"  # recent failures, still answering
    RECONNECTING = "reconnecting"  # the link was dropped and is being re-opened
    LOST = "lost"  # gave up for now; retried at the longest back-off


@dataclass
class RetryPolicy:
    """Bounded retries with exponential back-off (Opentrons: 5 s timeouts, 2 retries)."""

    timeout_s: float = 1.0
    retries: int = 2
    backoff_initial_s: float = 0.05
    backoff_max_s: float = 30.0
    failures_until_reconnect: int = 3
    failures_until_lost: int = 8

    def backoff_s(self, failures: int) -> float:
        return min(self.backoff_initial_s * 2 ** max(failures - 1, 0), self.backoff_max_s)


@dataclass
class ConnectionHealth:
    """Counts consecutive failures and derives the state; thread-safe, with a change hook."""

    name: str
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    on_change: Callable[[str, ConnectionState, ConnectionState, str], None] | None = None
    state: ConnectionState = ConnectionState.OK
    consecutive_failures: int = 0
    last_error: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def succeeded(self) -> None:
        with self._lock:
            self.consecutive_failures = 0
            self._set(ConnectionState.OK, "")

    def failed(self, error: str) -> ConnectionState:
        with self._lock:
            self.consecutive_failures += 1
            self.last_error = error
            n, policy = self.consecutive_failures, self.policy
            if n >= policy.failures_until_lost:
                self._set(ConnectionState.LOST, error)
            elif n >= policy.failures_until_reconnect:
                self._set(ConnectionState.RECONNECTING, error)
            else:
                self._set(ConnectionState.DEGRADED, error)
            return self.state

    def _set(self, new: ConnectionState, reason: str) -> None:
        old, self.state = self.state, new
        if old != new and self.on_change is not None:
            self.on_change(self.name, old, new, reason)
