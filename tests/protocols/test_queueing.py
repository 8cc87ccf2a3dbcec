"""Queueing a protocol on a rig: checked against the rig's stored file, audited, refused with the reason."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from protocols.errors import ProtocolFileError
from protocols.lab.queueing import QueueRefused, cancel, enqueue, known_rigs
from store import make_engine
from store.audit import verify_audit
from store.migrate import upgrade
from store.repositories import queue
from store.schema import AuditEntry, Rig
from store.states import QueueState

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PROTOCOL = (EXAMPLES / "protocols" / "overnight_dosing.toml").read_text(encoding="utf-8")


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'lab.db'}", create=True)
    upgrade(engine)
    with engine.begin() as c:  # what a supervisor does when it registers its rig
        rig_text = (EXAMPLES / "rigs" / "liver4.toml").read_text(encoding="utf-8")
        c.execute(Rig.__table__.insert().values(name="liver4", config_toml=rig_text, created_utc_s=time.time()))
    yield engine
    engine.dispose()


def test_a_valid_protocol_is_queued_for_a_known_rig_and_audited(engine):
    entry_id = enqueue(
        engine, protocol_text=PROTOCOL, protocol_name="overnight_dosing.toml", rig_name="liver4", queued_by="sam"
    )
    entry = queue.get(engine, entry_id)
    assert (entry.rig_name, entry.state, entry.queued_by) == ("liver4", QueueState.QUEUED, "sam")
    assert abs(entry.queued_utc_s - time.time()) < 60  # wall-clock, not a run's clock
    with engine.connect() as c:
        last = c.execute(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
    assert (last.action, last.actor, last.entity_id) == ("queue.add", "sam", str(entry_id))
    cancel(engine, entry_id, by="sam", reason="wrong day")
    assert queue.get(engine, entry_id).state is QueueState.CANCELLED
    with pytest.raises(QueueRefused, match=f"queue entry {entry_id} is cancelled; only a queued entry"):
        cancel(engine, entry_id, by="sam", reason="again")
    assert verify_audit(engine).intact


def test_an_unknown_rig_or_an_invalid_protocol_queues_nothing(engine):
    assert known_rigs(engine) == ["liver4"]
    with pytest.raises(QueueRefused, match="rig 'gut9' is not known to this lab; fix: use one of: liver4"):
        enqueue(engine, protocol_text=PROTOCOL, protocol_name="p.toml", rig_name="gut9", queued_by="sam")
    broken = PROTOCOL.replace('"chip1"', '"chip9"', 1)
    assert broken != PROTOCOL
    with pytest.raises(ProtocolFileError, match="p.toml line"):
        enqueue(engine, protocol_text=broken, protocol_name="p.toml", rig_name="liver4", queued_by="sam")
    assert queue.listing(engine) == []
