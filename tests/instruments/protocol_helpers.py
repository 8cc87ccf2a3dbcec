"""Test helpers: PyMeasure-style ``expected_protocol`` and leak checks for pty simulators."""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import pytest

from instruments.connection import RetryPolicy
from instruments.transport.framing import Framing
from instruments.transport.scripted import ScriptedTransport, ScriptEntry

# Short timeouts and back-offs so fault tests stay well under a second each.
FAST = RetryPolicy(
    timeout_s=0.25,
    retries=2,
    backoff_initial_s=0.005,
    backoff_max_s=0.05,
    failures_until_reconnect=3,
    failures_until_lost=6,
)


@contextmanager
def expected_protocol(
    driver_factory: Callable[[ScriptedTransport], Any], exchanges: list[ScriptEntry], framing: Framing | None = None
) -> Iterator[Any]:
    """Yield a driver on a scripted transport; fail unless exactly ``exchanges`` happened.

    ``exchanges`` is ``[(bytes_the_driver_must_send, raw_reply_bytes_or_None), ...]``
    copied from the manual; ``None`` means the device stays silent.
    """
    transport = ScriptedTransport(exchanges, framing)
    driver = driver_factory(transport)
    yield driver
    assert transport.remaining == [], f"exchanges never sent: {transport.remaining!r}"


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def no_leaks() -> Iterator[None]:
    """Fail a test that leaves threads running or file descriptors open."""
    threads_before, fds_before = set(threading.enumerate()), open_fds()
    yield
    leaked_threads = [t.name for t in threading.enumerate() if t not in threads_before and t.is_alive()]
    leaked_fds = {fd for fd in open_fds() - fds_before if os.path.exists(f"/proc/self/fd/{fd}")}
    assert not leaked_threads, f"threads left running: {leaked_threads}"
    assert not leaked_fds, f"file descriptors left open: {sorted(leaked_fds)}"
