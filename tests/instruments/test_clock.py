"""The shared clock: accelerated time that two processes agree on."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest

from instruments.clock import AcceleratedClock, RealClock, clock_from_dict


def test_accelerated_clock_runs_rate_times_faster():
    clock = AcceleratedClock.starting_now(rate=3600.0, start_utc_s=1.8e9)
    wall_before = time.time()
    start = clock.now_s()
    wall_inner = time.time()
    time.sleep(0.05)
    wall_inner_end = time.time()
    elapsed_s = clock.now_s() - start
    wall_after = time.time()
    # bracketed by the wall time measured inside and outside the two readings, so a loaded
    # machine that oversleeps cannot fail it; only a wrong rate can
    rounding_s = 0.01  # time.time() near 1.8e9 s has float64 steps of ~2.4e-7 s, times the rate 3600
    assert (
        3600 * (wall_inner_end - wall_inner) - rounding_s <= elapsed_s <= 3600 * (wall_after - wall_before) + rounding_s
    )
    assert elapsed_s >= 3600 * 0.05 * 0.99


def test_sleep_and_wait_take_clock_time():
    clock = AcceleratedClock.starting_now(rate=1000.0)
    started = time.perf_counter()
    clock.sleep(50.0)  # 50 clock seconds = 50 ms
    assert 0.045 < time.perf_counter() - started < 1.0
    event = threading.Event()
    assert clock.wait(event, 20.0) is False
    event.set()
    assert clock.wait(event, 1e6) is True


def test_another_process_reads_the_same_time():
    clock = AcceleratedClock.starting_now(rate=100.0, start_utc_s=1.8e9)
    code = (
        "import json,sys; from instruments.clock import clock_from_dict; "
        "print(clock_from_dict(json.loads(sys.argv[1])).now_s())"
    )
    before = clock.now_s()
    other = float(
        subprocess.run(
            [sys.executable, "-c", code, json.dumps(clock.to_dict())],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
    )
    after = clock.now_s()
    assert before <= other <= after


def test_real_clock_and_bad_rate():
    assert abs(RealClock().now_s() - time.time()) < 1.0
    assert isinstance(clock_from_dict({"kind": "real"}), RealClock)
    with pytest.raises(ValueError, match="must be positive"):
        AcceleratedClock.starting_now(rate=0)
