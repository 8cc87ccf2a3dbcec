"""A supervisor SIGKILLed between claiming a queue entry and starting its runner: its restart puts the
entry back on the queue (it has no run, so nothing of it ran) and runs it once; a runner that comes
for an entry no longer claimed is refused without creating a run."""

from __future__ import annotations

import signal

import pytest
from sqlalchemy import func, select

from instruments.clock import AcceleratedClock
from protocols.lab.queueing import enqueue
from protocols.lab.supervisor import KILL_AFTER_CLAIM_ENV
from protocols.run.record import Recorder
from store.repositories import queue
from store.schema import AuditEntry, ProtocolRun
from store.states import QueueState
from tests.protocols.lab_helpers import PUMPS, dosing_protocol, sim_lab, wait_for


def _runs(lab) -> dict[int, str]:  # noqa: ANN001
    with lab.engine.connect() as c:
        return dict(c.execute(select(ProtocolRun.id, ProtocolRun.state)).all())


@pytest.mark.timeout(180)
def test_an_entry_claimed_by_a_killed_supervisor_is_requeued_and_run_once(tmp_path, sqlite_url):
    with sim_lab(tmp_path, sqlite_url, 1, 3600.0) as lab:
        doomed = lab.serve(env={KILL_AFTER_CLAIM_ENV: "1"})
        entry = enqueue(
            lab.engine,
            protocol_text=dosing_protocol(1, 0.5),
            protocol_name="p.toml",
            rig_name="liver1",
            queued_by="sam",
        )
        assert doomed.wait(120) == -signal.SIGKILL  # killed by itself right after its claim committed
        claimed = queue.get(lab.engine, entry)
        assert claimed.state is QueueState.STARTING and claimed.ended_by == "bench-pc-1"
        assert _runs(lab) == {}, "no runner was started"

        lab.serve()
        done = wait_for(lambda: (e := queue.get(lab.engine, entry)).run_id and _runs(lab).get(e.run_id) == "done", 120)
        assert done
        run_id = queue.get(lab.engine, entry).run_id
        assert list(_runs(lab)) == [run_id], "the entry ran once"
        with lab.engine.connect() as c:
            requeued = c.execute(select(AuditEntry.entity_id).where(AuditEntry.action == "queue.requeued")).scalars()
            assert [int(e) for e in requeued] == [entry]
        keys = sorted(r.idempotency_key.rsplit("/", 1)[0] for r in lab.confirmed())
        assert keys == sorted(f"run{run_id}/step0/{chip}" for chip in PUMPS.values())


def test_a_runner_for_an_entry_no_longer_claimed_creates_no_run(tmp_path, sqlite_url):
    from instruments.rig.model import load_rig
    from store.engine import make_engine
    from store.migrate import upgrade
    from tests.protocols.runner_helpers import RIG

    engine = make_engine(sqlite_url, create=True)
    upgrade(engine)
    recorder = Recorder(engine, AcceleratedClock.starting_now(1.0).now_s)
    rig_id = next(iter(recorder.sync_rig(load_rig(RIG))["rig"].values()))
    with engine.begin() as c:
        entry = queue.add(
            c, rig_name="liver4", protocol_text="x", protocol_name="p.toml", queued_by="sam", now_utc_s=0.0
        )
    with pytest.raises(queue.QueueEntryNotStarting, match=f"queue entry {entry} is queued, not starting"):
        recorder.create_run(rig_id, "x", 1.0, queue_entry=entry)  # re-queued: this runner is late
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(ProtocolRun)).scalar() == 0, "its run was rolled back"
    with engine.begin() as c:
        assert queue.claim(c, entry, by="pc1")
    run_id = recorder.create_run(rig_id, "x", 1.0, queue_entry=entry)
    assert queue.get(engine, entry).state is QueueState.STARTED and queue.get(engine, entry).run_id == run_id
    engine.dispose()
