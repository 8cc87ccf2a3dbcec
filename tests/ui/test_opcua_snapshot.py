"""What the OPC UA endpoint reads from the store each poll, on SQLite and PostgreSQL: the one-statement
reads agree with the store's own queries, and the topology mark moves when the lab grows."""

from __future__ import annotations

import time

from store import make_engine
from store.engine import session
from store.ingest import Quality, ReadingIn, ingest_readings
from store.migrate import upgrade
from store.queries import latest_readings
from store.repositories import runs as run_records
from store.schema import Channel, Chip, ProtocolRun, Rig, Step
from ui.endpoints.opcua import snapshot

T0 = time.time() - 3600.0


def _lab(url: str):
    engine = make_engine(url, create=True)
    upgrade(engine)
    with session(engine) as s:
        rigs = [Rig(name=f"rig-{i}", created_utc_s=T0) for i in (1, 2, 3)]
        s.add_all(rigs)
        s.flush()
        chip = Chip(rig_id=rigs[0].id, name="liver-1", organ="liver")
        s.add(chip)
        s.flush()
        channels = [
            Channel(rig_id=rig.id, chip_id=chip.id if rig is rigs[0] else None, name=q, quantity=q, unit="percent")
            for rig in rigs[:2]
            for q in ("oxygen", "ph", "never-read")
        ]
        s.add_all(channels)
        for rig, states in ((rigs[0], ("done", "running")), (rigs[1], ("aborted",))):
            for state in states:
                s.add(ProtocolRun(rig_id=rig.id, protocol_text="x", protocol_sha256="0" * 64, state=state))
        s.commit()
        ids, rig_1 = [c.id for c in channels], rigs[0].id
    newest = run_records.latest_of_rig(engine, rig_1)
    assert newest is not None
    with session(engine) as s:
        for index, kind, state in ((0, "wait", "done"), (2, "dose", "running"), (1, "fit", "done")):
            s.add(Step(run_id=newest.id, index=index, kind=kind, state=state))
        s.commit()
    for k in range(5):
        readings = [ReadingIn(c, T0 + k + 0.01 * c, float(10 * k + c)) for c in ids if c not in (ids[2], ids[5])]
        ingest_readings(engine, readings)
    ingest_readings(engine, [ReadingIn(ids[1], T0 + 99.0, 7.0, int(Quality.STALE))])
    return engine


def test_values_and_runs_in_one_pass_agree_with_the_stores_own_queries(store_url):
    engine = _lab(store_url)
    try:
        got = {v.channel_id: (v.t_utc_s, v.value, v.quality) for v in snapshot.values(engine)}
        want = {r.channel_id: (r.t_utc_s, r.value, int(r.quality or 0)) for r in latest_readings(engine)}
        assert got == want and len(got) == 6
        assert sum(1 for t, _, _ in got.values() if t is None) == 2  # the never-read channels are there, empty
        assert (7.0, int(Quality.STALE)) in {(v, q) for _, v, q in got.values()}
        rigs = {r.name: r.id for r in snapshot.topology(engine)}
        runs = snapshot.runs(engine)
        newest = run_records.latest_of_rig(engine, rigs["rig-1"])
        assert newest is not None
        assert runs[rigs["rig-1"]] == snapshot.RunView(newest.id, "running", "2 dose (running)")
        assert runs[rigs["rig-2"]].state == "aborted" and runs[rigs["rig-2"]].current_step == ""
        assert rigs["rig-3"] not in runs and snapshot.run_of(engine, rigs["rig-3"]) == snapshot.IDLE
    finally:
        engine.dispose()


def test_the_topology_mark_moves_when_a_rig_chip_or_channel_is_added(store_url):
    engine = _lab(store_url)
    try:
        marks = [snapshot.topology_mark(engine)]
        assert snapshot.topology_mark(engine) == marks[0]  # unchanged store, unchanged mark
        with session(engine) as s:
            s.add(Channel(rig_id=1, name="new", quantity="ph", unit="percent"))
            s.commit()
        marks.append(snapshot.topology_mark(engine))
        with session(engine) as s:
            s.add(Chip(rig_id=2, name="kidney-1", organ="kidney"))
            s.commit()
        marks.append(snapshot.topology_mark(engine))
        assert len(set(marks)) == 3
    finally:
        engine.dispose()
