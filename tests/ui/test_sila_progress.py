"""What ObserveRun and ReadLatest read, in-process on both backends: a queue entry's progress, a channel by name."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import insert, select, update

from store import make_engine
from store.migrate import upgrade
from store.repositories import channels, queue, runs
from store.schema import Channel, Chip, ProtocolRun, Reading, Rig, Step
from store.states import RunState
from tests.ui.test_sila_server import TWO_WAITS
from ui.endpoints.sila.progress import progress
from ui.endpoints.sila.run_queue import not_before_utc_s
from ui.panel.errors import InvalidInput


@pytest.fixture
def engine(store_url):
    engine = make_engine(store_url, create=True)
    upgrade(engine)
    yield engine
    engine.dispose()


def test_progress_follows_an_entry_from_the_queue_to_its_runs_end(engine):
    now = time.time()
    with engine.begin() as c:
        rig_id = c.execute(insert(Rig).values(name="liver4", config_toml="", created_utc_s=now)).inserted_primary_key[0]
        entry = queue.add(
            c, rig_name="liver4", protocol_text=TWO_WAITS, protocol_name="p", queued_by="sci", now_utc_s=now
        )
    assert progress(engine, entry, 2).status() == ("queued", 0, "", 0, 2)
    assert not progress(engine, entry, 2).ended and progress(engine, entry, 2).fraction == 0.0
    with engine.begin() as c:
        run_id, _ = runs.create(c, rig_id, TWO_WAITS, 3600.0)
        assert queue.claim(c, entry, by="sup") and queue.mark_started(c, entry, run_id=run_id, now_utc_s=now)
        c.execute(update(ProtocolRun).where(ProtocolRun.id == run_id).values(state=RunState.RUNNING))
        c.execute(insert(Step).values(run_id=run_id, index=0, kind="wait", state="running", started_utc_s=now))
    running = progress(engine, entry, 2)
    assert running.status() == ("running", run_id, "0 wait", 1, 2) and running.fraction == 0.5
    with engine.begin() as c:
        c.execute(insert(Step).values(run_id=run_id, index=1, kind="wait", state="done", started_utc_s=now))
        c.execute(update(ProtocolRun).where(ProtocolRun.id == run_id).values(state=RunState.DONE))
    done = progress(engine, entry, 2)
    assert done.status() == ("done", run_id, "1 wait", 2, 2) and done.ended and done.fraction == 1.0

    with engine.begin() as c:
        other = queue.add(
            c, rig_name="liver4", protocol_text=TWO_WAITS, protocol_name="p", queued_by="sci", now_utc_s=now
        )
        assert queue.cancel(c, other, by="sci", reason="not today", now_utc_s=now)
    cancelled = progress(engine, other, 2)
    assert (cancelled.state, cancelled.ended, cancelled.note) == ("cancelled", True, "not today")


def test_a_channel_is_read_by_its_rig_and_name_with_its_unit(engine):
    now = time.time()
    with engine.begin() as c:
        rig_id = c.execute(insert(Rig).values(name="liver4", config_toml="", created_utc_s=now)).inserted_primary_key[0]
        chip_id = c.execute(insert(Chip).values(rig_id=rig_id, name="chip1", organ="liver")).inserted_primary_key[0]
        c.execute(insert(Channel).values(rig_id=rig_id, chip_id=chip_id, name="chip1_o2", quantity="oxygen", unit="%"))
        c.execute(insert(Channel).values(rig_id=rig_id, name="inlet_pressure", quantity="pressure", unit="mbar"))
        o2 = c.execute(select(Channel.id).where(Channel.name == "chip1_o2")).scalar_one()
        c.execute(
            insert(Reading), [{"channel_id": o2, "t_utc_s": now - i, "value": 20.0 - i, "quality": 0} for i in range(5)]
        )
    assert [(c.chip, c.channel, c.unit) for c in channels.listing(engine)] == [
        ("chip1", "chip1_o2", "%"),
        ("", "inlet_pressure", "mbar"),
    ]
    latest = channels.latest(engine, "liver4", "chip1_o2")
    assert latest is not None and (latest.value, latest.unit, latest.quality) == (20.0, "%", 0)
    assert abs(latest.t_utc_s - now) < 1e-3
    assert channels.latest(engine, "liver4", "inlet_pressure") is None  # a channel without a reading
    assert channels.channel_id(engine, "liver4", "inlet_pressure") is not None
    assert channels.latest(engine, "gut9", "chip1_o2") is None


def test_not_before_needs_an_offset():
    assert not_before_utc_s("") is None
    assert not_before_utc_s("1970-01-01T01:00:00+01:00") == 0.0
    with pytest.raises(InvalidInput, match="has no UTC offset; add one"):
        not_before_utc_s("2099-01-01T00:00:00")
    with pytest.raises(InvalidInput, match="cannot read 'tomorrow'"):
        not_before_utc_s("tomorrow")
