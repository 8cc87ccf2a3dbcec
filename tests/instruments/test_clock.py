"""The shared clock: accelerated time that two processes agree on."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from instruments.clock import AcceleratedClock, RealClock, SharedClock, clock_from_dict, holding


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


# -- the shared clock: held while the runner computes -----------------------------------------

HOLD_IN_CHILD = """
import sys, time
from instruments.clock import SharedClock
clock = SharedClock(sys.argv[1])
clock.hold()
print("held", flush=True)
sys.stdin.readline()  # until the parent has looked
clock.release()
print("released", flush=True)
"""


def test_a_hold_in_one_process_is_seen_in_another(tmp_path):
    clock = SharedClock.create(tmp_path / "clock", rate=3600.0, start_utc_s=1.8e9)
    assert clock.is_held is False
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_IN_CHILD, str(clock.path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout.readline().strip() == "held"
            assert clock.is_held is True
            # held: simulated time runs at 1x, bracketed by the wall time measured around the readings
            wall_before, before = time.time(), clock.now_s()
            time.sleep(0.2)
            after, wall_after = clock.now_s(), time.time()
            assert 0.2 * 0.99 <= after - before <= (wall_after - wall_before) + 0.01
            child.stdin.write("\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "released"
            assert child.wait(timeout=60) == 0
        finally:
            if child.poll() is None:
                child.kill()
    assert clock.is_held is False
    before = clock.now_s()
    time.sleep(0.05)
    assert clock.now_s() - before >= 3600 * 0.05 * 0.99  # released: the rate again
    assert isinstance(clock_from_dict(clock.to_dict()), SharedClock)


def test_a_compute_step_is_charged_its_real_duration(tmp_path):
    clock = SharedClock.create(tmp_path / "clock", rate=36000.0, start_utc_s=1.8e9)
    wall_before = time.perf_counter()
    before = clock.now_s()
    with holding(clock):
        time.sleep(0.3)  # a calibrate step of known real duration
    advanced_s = clock.now_s() - before
    wall_s = time.perf_counter() - wall_before
    # the hold's writes (file lock) happen outside the sleep: at most a few ms at the rate
    assert 0.3 <= advanced_s <= wall_s + 0.02 * 36000.0
    assert advanced_s < 0.1 * 0.3 * 36000.0, "a held clock must not advance at the rate"


def test_holds_nest_and_only_the_last_release_lets_it_run(tmp_path):
    clock = SharedClock.create(tmp_path / "clock", rate=1000.0)
    with clock.held():
        with clock.held():
            pass
        assert clock.is_held
    assert not clock.is_held
    assert holding(RealClock()).__enter__() is None  # other clocks: no hold, nothing to do


def test_advance_until_lands_on_the_target_and_then_crawls(tmp_path):
    clock = SharedClock.create(tmp_path / "clock", rate=10000.0, start_utc_s=1.8e9, stepped=True)
    start = clock.now_s()
    time.sleep(0.05)
    assert clock.now_s() - start < 1.0  # stepped: nothing runs until the protocol waits
    target = clock.now_s() + 600.0  # 60 ms of wall time at the rate
    clock.advance_until(target)
    wall_before = time.perf_counter()
    clock.sleep(target - clock.now_s())
    assert time.perf_counter() - wall_before < 30.0
    time.sleep(0.1)  # past the target: 1x, not the rate
    landed = clock.now_s()
    assert target <= landed <= target + (time.perf_counter() - wall_before) + 0.01


def test_a_waiter_sees_a_release_at_once(tmp_path):
    clock = SharedClock.create(tmp_path / "clock", rate=3600.0)
    clock.hold()
    event, woke = threading.Event(), []
    waiter = threading.Thread(target=lambda: woke.append(clock.wait(event, 360.0)))  # 360 s held = 6 min wall
    waiter.start()
    time.sleep(0.1)
    clock.release()  # now 360 clock s are 0.1 s of wall time
    waiter.join(timeout=30.0)
    assert not waiter.is_alive() and woke == [False]


def test_a_bad_rate_is_refused(tmp_path):
    with pytest.raises(ValueError, match="must be positive"):
        SharedClock.create(tmp_path / "clock", rate=0.0)


def test_sim_rig_shares_its_clock_through_a_file(tmp_path):
    endpoints, clock_file = tmp_path / "endpoints.json", tmp_path / "clock"
    command = [sys.executable, "-m", "ui.cli.app", "sim-rig", "--rig", "examples/rigs/liver4.toml"]
    command += ["--endpoints-file", str(endpoints), "--clock-file", str(clock_file), "--duration-s", "120"]
    repo = Path(__file__).resolve().parents[2]
    with subprocess.Popen(command, cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as rig:
        try:
            deadline = time.monotonic() + 120
            while not endpoints.exists() and rig.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            document = json.loads(endpoints.read_text())
            clock = clock_from_dict(document["clock"])
            assert isinstance(clock, SharedClock) and clock.rate == 3600.0
            with clock.held():  # the runner's side: the rig reads the same, held, time
                assert SharedClock(clock_file).is_held
        finally:
            rig.terminate()
            rig.wait(timeout=60)
    assert not SharedClock(clock_file).is_held


def test_sim_rig_clock_file_in_a_missing_folder_is_one_line(tmp_path):
    command = [sys.executable, "-m", "ui.cli.app", "sim-rig", "--rig", "examples/rigs/liver4.toml"]
    command += ["--endpoints-file", str(tmp_path / "e.json"), "--clock-file", str(tmp_path / "no" / "clock")]
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "--clock-file" in done.stderr and "Traceback" not in done.stderr
