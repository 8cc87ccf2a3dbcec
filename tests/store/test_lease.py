"""The rig lease on both backends: one winner among racers, refusals that name the holder, take-overs.

Racers are real processes (each with its own engine and connections), not threads
sharing one pool; times are wall-clock and every wait is bounded.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time

import pytest
from sqlalchemy import select, update

from store import make_engine
from store.audit import verify_audit
from store.lease import (
    DEFAULT_EXPIRY_S,
    EXPIRY_ENV,
    HEARTBEAT_ENV,
    HOST_ENV,
    LeaseError,
    LeaseRefused,
    LeaseTiming,
    acquire,
    hold_rig,
    holder_of,
    lease_rows,
    refuse_if_run_alive,
    this_host,
)
from store.schema import AuditEntry, RigLease

FAST = LeaseTiming(expiry_s=2.0, heartbeat_s=0.2)
RACERS = 6


def _race(url: str, ready, done, queue) -> None:  # noqa: ANN001 (a child process)
    engine = make_engine(url)
    try:
        ready.wait(timeout=240)  # every racer imported and connected (slow on a busy machine): then all at once
        try:
            lease = acquire(engine, "liver4", command="run", timing=FAST)
        except LeaseRefused as exc:
            queue.put(("refused", str(exc)))
            return
        queue.put(("won", os.getpid()))
        done.wait(timeout=240)  # hold the rig until every other racer has had its answer
        lease.release()
    except Exception as exc:  # noqa: BLE001 - reported to the test, never a silent child death
        queue.put(("error", repr(exc)))
    finally:
        engine.dispose()


@pytest.mark.timeout(600)  # six spawned interpreters on a busy 2-core machine
def test_of_processes_racing_for_a_rig_exactly_one_wins(engine, store_url):
    context = multiprocessing.get_context("spawn")
    ready, done, queue = context.Barrier(RACERS), context.Event(), context.Queue()
    children = [context.Process(target=_race, args=(store_url, ready, done, queue)) for _ in range(RACERS)]
    for child in children:
        child.start()
    try:
        outcomes = [queue.get(timeout=270) for _ in children]
    finally:
        done.set()
        for child in children:
            child.join(60)
    winners = [detail for kind, detail in outcomes if kind == "won"]
    refusals = [detail for kind, detail in outcomes if kind == "refused"]
    assert len(winners) == 1 and len(refusals) == RACERS - 1, outcomes
    assert all(f"pid {winners[0]}" in text and "is held by host" in text for text in refusals)
    assert all(child.exitcode == 0 for child in children)
    assert holder_of(engine, "liver4") is None  # released


def test_a_live_holder_is_never_displaced_not_even_with_take_over(engine):
    mine = acquire(engine, "liver4", command="run", timing=FAST)
    mine.attach_run(7)
    for take_over in (False, True):
        with pytest.raises(LeaseRefused) as refused:
            acquire(engine, "liver4", command="run", take_over=take_over, timing=FAST)
        text = str(refused.value)
        assert f"host {this_host()} pid {os.getpid()} (run 7, `chiptwin run`)" in text
        assert "UTC" in text and "--take-over" in text and "\n" not in text
    with pytest.raises(LeaseRefused, match="run 7 is still being driven on rig liver4"):
        refuse_if_run_alive(engine, 7)
    mine.release()
    assert holder_of(engine, "liver4") is None


def _stale(engine, **values) -> None:  # noqa: ANN001
    with engine.begin() as c:
        c.execute(update(RigLease).where(RigLease.rig_name == "liver4").values(**values))


def test_a_gone_holder_needs_take_over_which_is_audited(engine):
    gone = acquire(engine, "liver4", command="run", run_id=3, timing=FAST)
    _stale(engine, holder_host="bench-pc-2", expires_utc_s=time.time() - 5.0)  # another host, silent
    with pytest.raises(LeaseRefused) as refused:
        acquire(engine, "liver4", command="run", timing=FAST)
    assert "is gone (its heartbeat expired" in str(refused.value)
    assert "`chiptwin resume 3`" in str(refused.value) and "--take-over" in str(refused.value)
    refuse_if_run_alive(engine, 3)  # its holder is gone: a resume may go ahead
    taken = acquire(engine, "liver4", command="run", take_over=True, timing=FAST)
    assert taken.taken_over is not None and taken.taken_over.holder_host == "bench-pc-2"
    assert not gone.renew(), "the old holder must learn that the rig is no longer its"
    with engine.connect() as c:
        entry = c.execute(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
    assert entry.action == "rig.lease_taken_over" and entry.entity_id == "liver4"
    payload = json.loads(entry.payload_json)
    assert payload["explicit_take_over"] is True and payload["previous"]["holder_host"] == "bench-pc-2"
    assert verify_audit(engine).intact
    taken.release()


def test_a_resume_adopts_the_lease_of_its_own_dead_runner_at_once(engine):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    acquire(engine, "liver4", command="run", run_id=4, timing=FAST)
    _stale(engine, holder_pid=int(dead.stdout))  # same host, pid gone: no need to wait for the expiry
    with pytest.raises(LeaseRefused, match="resume 4"):
        acquire(engine, "liver4", command="resume", run_id=5, adopt_run=5, timing=FAST)  # not its run
    lease = acquire(engine, "liver4", command="resume", run_id=4, adopt_run=4, timing=FAST)
    assert lease.taken_over.holder_pid == int(dead.stdout)
    assert holder_of(engine, "liver4").holder_pid == os.getpid()
    lease.release()


def test_the_heartbeat_keeps_the_lease_and_reports_its_loss(engine):
    lost = []
    with hold_rig(engine, "liver4", command="run", timing=FAST, on_lost=lost.append) as lease:
        first = holder_of(engine, "liver4")
        deadline = time.monotonic() + 30.0
        while holder_of(engine, "liver4").expires_utc_s <= first.expires_utc_s and time.monotonic() < deadline:
            time.sleep(0.05)
        assert holder_of(engine, "liver4").expires_utc_s > first.expires_utc_s  # renewed
        _stale(engine, token="someone-else", holder_pid=1)  # taken over behind its back
        while not lost and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lost and lost[0].holder_pid == 1 and lease.lost
    assert holder_of(engine, "liver4").token == "someone-else"  # a lost lease is not "released"


def test_lease_rows_show_holder_heartbeat_age_and_expiry(engine):
    lease = acquire(engine, "liver4", command="run", run_id=9, timing=FAST)
    now = holder_of(engine, "liver4").heartbeat_utc_s
    rows = {r["rig"]: r for r in lease_rows(engine, ["bench-1"], now_utc_s=now + 3.0)}
    assert rows["bench-1"]["holder"] == "free" and rows["bench-1"]["heartbeat_age_s"] is None
    held = rows["liver4"]
    assert held["heartbeat_age_s"] == pytest.approx(3.0) and held["expired"] is True  # FAST expires after 2 s
    assert f"pid {os.getpid()} (run 9" in held["holder"] and held["since_utc"].endswith("UTC")
    lease.release()


def test_lease_times_come_from_the_environment_and_are_checked(monkeypatch):
    assert LeaseTiming.from_env().expiry_s == DEFAULT_EXPIRY_S
    monkeypatch.setenv(EXPIRY_ENV, "4")
    monkeypatch.setenv(HEARTBEAT_ENV, "0.5")
    assert LeaseTiming.from_env() == LeaseTiming(4.0, 0.5)
    monkeypatch.setenv(HEARTBEAT_ENV, "3")
    with pytest.raises(LeaseError, match="at most half the expiry"):
        LeaseTiming.from_env()
    monkeypatch.setenv(EXPIRY_ENV, "soon")
    with pytest.raises(LeaseError, match="not a positive number of seconds"):
        LeaseTiming.from_env()
    monkeypatch.setenv(HOST_ENV, "bench-pc-7")
    assert this_host() == "bench-pc-7"
