"""The run queue on both backends: queue order, due times, and state changes that only one caller wins."""

from __future__ import annotations

import threading

import pytest

from store.repositories import queue
from store.states import QueueState

PROTOCOL = 'name = "p"\n'


def _add(engine, rig: str = "liver4", not_before: float | None = None, text: str = PROTOCOL) -> int:  # noqa: ANN001
    with engine.begin() as c:
        return queue.add(
            c,
            rig_name=rig,
            protocol_text=text,
            protocol_name="p.toml",
            queued_by="sam",
            now_utc_s=1000.0,
            not_before_utc_s=not_before,
        )


def test_entries_come_due_in_queue_order_per_rig_and_not_before_their_time(engine):
    first = _add(engine, not_before=2000.0)
    second = _add(engine)
    other_rig = _add(engine, rig="gut2")
    assert queue.next_due(engine, "liver4", now_utc_s=1500.0).id == second  # the first is not due yet
    assert queue.next_due(engine, "liver4", now_utc_s=2000.0).id == first  # due now, and older
    assert queue.next_due(engine, "gut2", now_utc_s=0.0).id == other_rig
    assert queue.next_due(engine, "kidney1", now_utc_s=0.0) is None
    entry = queue.get(engine, first)
    assert entry.state is QueueState.QUEUED and entry.queued_by == "sam" and entry.protocol_name == "p.toml"
    assert len(entry.protocol_sha256) == 64 and queue.protocol_text(engine, first) == PROTOCOL
    assert [e.id for e in queue.listing(engine, rig_name="liver4")] == [first, second]


def test_an_entry_moves_queued_starting_started_and_keeps_its_run(engine, channels):
    from store.repositories import runs

    entry_id = _add(engine)
    with engine.begin() as c:
        assert queue.claim(c, entry_id, by="lab-a")
        assert not queue.claim(c, entry_id, by="lab-b")  # claimed once
        run_id, _ = runs.create(c, rig_id=1, protocol_text=PROTOCOL, clock_rate=1.0)
        assert queue.mark_started(c, entry_id, run_id=run_id, now_utc_s=1100.0)
        assert not queue.cancel(c, entry_id, by="sam", reason="too late", now_utc_s=1200.0)
    entry = queue.get(engine, entry_id)
    assert (entry.state, entry.run_id, entry.ended_by, entry.ended_utc_s) == (
        QueueState.STARTED,
        run_id,
        "lab-a",
        1100.0,
    )
    assert queue.listing(engine, open_only=True) == []


def test_a_cancelled_entry_is_never_started_and_a_released_one_is_due_again(engine):
    cancelled, released, failed = _add(engine), _add(engine), _add(engine)
    with engine.begin() as c:
        assert queue.cancel(c, cancelled, by="sam", reason="wrong drug", now_utc_s=1200.0)
        assert not queue.claim(c, cancelled, by="lab-a")
        assert queue.claim(c, released, by="lab-a") and queue.release(c, released)
        assert queue.claim(c, failed, by="lab-a")
        assert queue.mark_failed(c, failed, reason="protocol invalid for this rig", now_utc_s=1300.0)
    assert queue.next_due(engine, "liver4", now_utc_s=2000.0).id == released
    states = {e.id: (e.state, e.note) for e in queue.listing(engine)}
    assert states[cancelled] == (QueueState.CANCELLED, "wrong drug")
    assert states[failed] == (QueueState.FAILED, "protocol invalid for this rig")
    assert [e.id for e in queue.listing(engine, open_only=True)] == [released]


def test_of_two_supervisors_claiming_at_once_exactly_one_wins(engine):
    entry_id = _add(engine)
    wins: list[str] = []
    barrier = threading.Barrier(4)

    def claim(name: str) -> None:
        barrier.wait(timeout=30)
        with engine.begin() as c:
            if queue.claim(c, entry_id, by=name):
                wins.append(name)

    threads = [threading.Thread(target=claim, args=(f"lab-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(wins) == 1 and queue.get(engine, entry_id).ended_by == wins[0]


def test_an_unknown_entry_is_named_with_the_fix(engine):
    with pytest.raises(queue.UnknownQueueEntry, match="no queue entry 99 .*chiptwin queue list"):
        queue.get(engine, 99)
