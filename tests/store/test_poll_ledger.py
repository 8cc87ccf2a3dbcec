"""The poll ledger on real SQLite and PostgreSQL: every slot is stored, skipped, down, pending or lost."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, delete, event

from store.ingest import ReadingIn, ingest_readings
from store.repositories import polls, runs
from store.schema import Reading

PERIOD_S = 10.0


@pytest.fixture
def run_id(engine: Engine, channels: dict[str, int]) -> int:
    with engine.begin() as c:
        rig_id = c.exec_driver_sql("SELECT rig_id FROM channel WHERE id = %d" % channels["o2"]).scalar()
        return runs.create(c, rig_id, "[protocol]\n", 60.0)[0]


def _session(engine: Engine, run_id: int, started_s: float, schedule: dict[int, float]) -> int:
    with engine.begin() as c:
        sid = polls.open_session(c, run_id, 4242, started_s)
        polls.add_schedule(c, sid, {cid: (first, PERIOD_S) for cid, first in schedule.items()})
    return sid


def _read(engine: Engine, channel_id: int, first_s: float, slots: list[int], late_s: float = 3.7) -> None:
    """One reading per slot, taken ``late_s`` after it was due (within its period)."""
    ingest_readings(engine, [ReadingIn(channel_id, first_s + k * PERIOD_S + late_s, 20.0 + k) for k in slots])


def _gap(engine: Engine, sid: int, channel_id: int, first: int, n: int, reason: str = "late") -> None:
    with engine.begin() as c:
        polls.add_gaps(c, sid, [polls.GapRow(channel_id, first, n, reason)])


def test_each_slot_is_stored_skipped_or_lost(engine, channels, run_id):
    o2 = channels["o2"]
    sid = _session(engine, run_id, 1000.0, {o2: 1000.0})
    _read(engine, o2, 1000.0, [0, 1, 2, 5, 6, 8, 9])
    _gap(engine, sid, o2, 3, 2)  # the poller skipped slots 3 and 4 (late) …
    with engine.begin() as c:  # … and slot 7's reading never reached the store
        c.execute(delete(Reading).where(Reading.channel_id == o2, Reading.t_utc_s == 1000.0 + 70.0 + 3.7))
    _read(engine, o2, 1000.0, [0])  # a repeated ingest changes nothing

    counts = polls.ledger(engine, run_id).channels["o2"]
    assert (counts.expected, counts.stored, counts.skipped, counts.lost) == (10, 7, 2, 1)
    assert counts.skipped_by_reason == {"late": 2} and counts.down == counts.pending == 0
    _read(engine, o2, 1000.0, [7])
    assert polls.ledger(engine, run_id).channels["o2"].lost == 0


def test_a_window_counts_the_slots_due_in_it_and_a_live_tail_is_pending(engine, channels, run_id):
    o2 = channels["o2"]
    sid = _session(engine, run_id, 1000.0, {o2: 1000.0})
    _read(engine, o2, 1000.0, list(range(6)), late_s=9.99)  # read just before the next slot was due
    _gap(engine, sid, o2, 6, 1, "no_value")
    # slots due in [1020, 1100): 2 … 9; stored 2 … 5, slot 6 had no value, 7 … 9 not written yet
    counts = polls.ledger(engine, run_id, 1020.0, 1100.0).channels["o2"]
    assert (counts.expected, counts.stored, counts.skipped, counts.pending, counts.lost) == (8, 4, 1, 3, 0)
    assert counts.skipped_by_reason == {"no_value": 1}
    # the slot due exactly at the window's start belongs to it; one due at its end does not
    assert polls.ledger(engine, run_id, 1010.0, 1020.0).channels["o2"].expected == 1


def test_a_dead_runners_tail_is_down_until_the_resumed_runners_first_slot(engine, channels, run_id):
    o2, pressure = channels["o2"], channels["pressure"]
    first = _session(engine, run_id, 1000.0, {o2: 1000.0, pressure: 1005.0})
    _read(engine, o2, 1000.0, [0, 1, 2, 3, 4])  # killed after slot 4 (due 1040)
    _read(engine, pressure, 1005.0, [0, 1, 2, 3])
    _gap(engine, first, pressure, 4, 1)
    second = _session(engine, run_id, 1100.5, {o2: 1101.0, pressure: 1106.0})  # the resumed runner
    _read(engine, o2, 1101.0, [0, 1, 2])
    _read(engine, pressure, 1106.0, [0, 1, 2])
    _gap(engine, second, o2, 3, 1)

    ledger = polls.ledger(engine, run_id)
    o2_counts, p_counts = ledger.channels["o2"], ledger.channels["pressure"]
    # o2: the dead grid's slots due 1000 … 1100 (11), 5 stored, 6 down; then 3 stored and 1 skipped
    assert (o2_counts.expected, o2_counts.stored, o2_counts.down, o2_counts.skipped, o2_counts.lost) == (15, 8, 6, 1, 0)
    # pressure: due 1005 … 1105 (11), 4 stored, 1 skipped, 6 down; then 3 stored
    assert (p_counts.expected, p_counts.stored, p_counts.skipped, p_counts.down) == (14, 7, 1, 6)
    total = ledger.total
    assert ledger.sessions == 2 and total.expected == total.stored + total.skipped + total.down + total.lost
    assert ledger.to_dict()["unit"] == "poll slots" and "0 lost" in total.text()


def test_a_clean_stop_ends_the_grid(engine, channels, run_id):
    o2 = channels["o2"]
    sid = _session(engine, run_id, 1000.0, {o2: 1000.0})
    _read(engine, o2, 1000.0, [0, 1, 2])
    with engine.begin() as c:
        polls.close_session(c, sid, 1041.0)  # slots due 1030 and 1040: not polled before the stop
    counts = polls.ledger(engine, run_id, 0.0, 5000.0).channels["o2"]
    assert (counts.expected, counts.stored, counts.down, counts.pending, counts.lost) == (5, 3, 2, 0, 0)


def test_a_reading_exactly_at_its_due_time_is_its_slots(engine, channels, run_id):
    o2 = channels["o2"]
    first_s = 1000.1  # due times that are not exact in binary: 1000.1 + k·10
    _session(engine, run_id, first_s, {o2: first_s})
    ingest_readings(engine, [ReadingIn(o2, first_s + k * PERIOD_S, 1.0) for k in range(30)])
    counts = polls.ledger(engine, run_id, first_s, first_s + 30 * PERIOD_S).channels["o2"]
    assert (counts.expected, counts.stored, counts.lost, counts.pending) == (30, 30, 0, 0)


def test_a_gap_needs_a_known_reason(engine, channels, run_id):
    sid = _session(engine, run_id, 1000.0, {channels["o2"]: 1000.0})
    with pytest.raises(ValueError, match="reason"), engine.begin() as c:
        polls.add_gaps(c, sid, [polls.GapRow(channels["o2"], 0, 1, "tired")])


def test_a_reading_of_the_next_session_is_not_counted_in_the_dead_sessions_last_slot(engine, channels, run_id):
    o2 = channels["o2"]
    _session(engine, run_id, 1000.0, {o2: 1000.0})
    _read(engine, o2, 1000.0, [0])  # slot 0: [1000, 1010); the runner dies at once
    _session(engine, run_id, 1004.0, {o2: 1005.0})  # resumed within that period
    _read(engine, o2, 1005.0, [0])  # at 1008.7: the new session's slot 0, inside the dead slot's interval
    counts = polls.ledger(engine, run_id).channels["o2"]
    assert (counts.expected, counts.stored, counts.down, counts.lost) == (2, 2, 0, 0)


def test_a_run_killed_after_it_ended_does_not_claim_the_rigs_next_run(engine, channels, run_id):
    """A runner SIGKILLed between its run's end and its poller's stop leaves its session open: the
    run's end and the rig's next run bound it, so the next run's readings are not this run's."""
    o2 = channels["o2"]
    _session(engine, run_id, 1000.0, {o2: 1000.0})  # never closed
    _read(engine, o2, 1000.0, [0, 1, 2, 3])
    with engine.begin() as c:
        runs.set_state(c, runs.get(c, run_id), "running", 1000.0)
        runs.set_state(c, runs.get(c, run_id), "done", 1036.0)  # ended during slot 3
        next_run = runs.create(c, runs.get(c, run_id).rig_id, "[protocol]\n", 60.0)[0]
    _session(engine, next_run, 1052.0, {o2: 1052.5})  # the rig's next run, another phase
    _read(engine, o2, 1052.5, list(range(10)))

    mine = polls.ledger(engine, run_id).channels["o2"]
    assert (mine.expected, mine.stored, mine.down, mine.pending, mine.lost) == (4, 4, 0, 0, 0)
    theirs = polls.ledger(engine, next_run).channels["o2"]
    assert (theirs.expected, theirs.stored, theirs.lost) == (10, 10, 0)


def test_a_slot_due_before_the_runs_end_and_read_after_it_is_stored(engine, channels, run_id):
    """The lab soak's one "lost" slot: the run ends while a slot is polled late; the poller, stopping,
    stores that reading (after the end, within its slot) and a later slot's gap. The slot is stored."""
    o2 = channels["o2"]
    sid = _session(engine, run_id, 1000.0, {o2: 1000.0})
    _read(engine, o2, 1000.0, [0, 1, 2])
    _read(engine, o2, 1000.0, [3], late_s=8.7)  # slot 3 (due 1030) read at 1038.7
    _gap(engine, sid, o2, 4, 2)  # slots 4 and 5 (due after the end) missed before the poller stopped
    with engine.begin() as c:
        runs.set_state(c, runs.get(c, run_id), "running", 1000.0)
        runs.set_state(c, runs.get(c, run_id), "done", 1036.0)  # ended during slot 3, before its reading
        polls.close_session(c, sid, 1061.0)

    counts = polls.ledger(engine, run_id).channels["o2"]
    assert (counts.expected, counts.stored, counts.skipped, counts.down, counts.lost) == (4, 4, 0, 0, 0)
    # a window ending during slot 3 counts it, with its reading, the same way
    window = polls.ledger(engine, run_id, 1000.0, 1036.0).channels["o2"]
    assert (window.expected, window.stored, window.lost) == (4, 4, 0)


def test_a_batch_committed_while_the_ledger_reads_is_seen_whole_or_not_at_all(engine, channels, run_id):
    """Issue #13: `rig status` on a live run counted 28 slots lost. The runner commits a batch of readings
    with the gaps before them; a ledger that read the gaps before that commit and the readings after it
    counted the gaps' slots lost. Here the batch commits between those reads: one snapshot sees none of it."""
    o2 = channels["o2"]
    sid = _session(engine, run_id, 1000.0, {o2: 1000.0})
    _read(engine, o2, 1000.0, [0, 1, 2, 3, 4])
    committed = []

    def commit_a_batch(_conn, _cursor, statement: str, *_args) -> None:
        if committed or "max(reading.t_utc_s)" not in statement.lower():
            return
        committed.append(True)  # before the writes: their own statements pass through here too
        # slots 5 and 6 skipped, slot 7 read: the gap commits with the reading after it, as StoreSink does
        batch = [ReadingIn(o2, 1000.0 + 7 * PERIOD_S + 3.7, 27.0)]
        gap = polls.GapRow(o2, 5, 2, "late")
        ingest_readings(engine, batch, with_first_batch=lambda c: polls.add_gaps(c, sid, [gap]))

    event.listen(engine, "before_cursor_execute", commit_a_batch)
    try:
        during = polls.ledger(engine, run_id).channels["o2"]
    finally:
        event.remove(engine, "before_cursor_execute", commit_a_batch)
    assert committed, "the ledger never read the channel's last reading"
    assert (during.expected, during.stored, during.skipped, during.lost) == (5, 5, 0, 0)
    after = polls.ledger(engine, run_id).channels["o2"]
    assert (after.expected, after.stored, after.skipped, after.lost) == (8, 6, 2, 0)
