"""The Runs page: every rig with its holder, run and queue; a scientist queues and cancels (through
protocols.lab.queueing: stored and audited), a technician gets no forms and is refused, and a bad
protocol is refused with its message and nothing queued."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from store import make_engine
from store.audit import verify_audit
from store.repositories import queue
from store.schema import AuditEntry, Rig
from store.states import QueueState
from tests.ui.test_panel_support import (  # noqa: F401 (lab is a fixture)
    Lab,
    app_signed_in,
    lab,
    on_page,
    texts,
)
from ui.panel import rig_queue
from ui.panel.auth import sign_in
from ui.panel.errors import NotAllowed

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PROTOCOL = (EXAMPLES / "protocols" / "overnight_dosing.toml").read_text(encoding="utf-8")


@pytest.fixture
def registered(lab: Lab) -> Lab:  # noqa: F811
    """``lab`` plus rig liver4 as a lab supervisor registers it (its rig file in the store)."""
    engine = make_engine(lab.url)
    with engine.begin() as c:
        rig_text = (EXAMPLES / "rigs" / "liver4.toml").read_text(encoding="utf-8")
        c.execute(Rig.__table__.insert().values(name="liver4", config_toml=rig_text, created_utc_s=time.time()))
    engine.dispose()
    return lab


def _audit_actions(url: str) -> list[tuple[str, str]]:
    engine = make_engine(url)
    try:
        with engine.connect() as c:
            return [(r.action, r.actor) for r in c.execute(select(AuditEntry).order_by(AuditEntry.seq))]
    finally:
        engine.dispose()


def _entries(url: str):
    engine = make_engine(url)
    try:
        return queue.listing(engine)
    finally:
        engine.dispose()


def test_a_scientist_sees_every_rig_queues_a_pasted_protocol_and_cancels_it(registered: Lab):
    app = on_page(app_signed_in("sam"), "runs")
    shown = texts(app)
    assert "Rig bench-1" in shown and "Rig liver4" in shown
    assert f"Run {registered.run_id}" in shown  # bench-1's running run, with its real start date
    app.selectbox(key="queue_rig").select("liver4")
    app.text_area(key="queue_text").input(PROTOCOL)
    app.button(key="FormSubmitter:queue_form-Queue").click().run()
    assert not app.exception, [e.value for e in app.exception]
    [entry] = _entries(registered.url)
    assert (entry.rig_name, entry.state, entry.queued_by) == ("liver4", QueueState.QUEUED, "sam")
    assert f"Queued pasted.toml on rig liver4 as entry {entry.id}." in texts(app)

    app.selectbox(key="cancel_entry").select(entry.id)
    app.text_input(key="cancel_reason").input("wrong day")
    app.button(key="FormSubmitter:cancel_form-Cancel entry").click().run()
    assert not app.exception, [e.value for e in app.exception]
    [entry] = _entries(registered.url)
    assert entry.state is QueueState.CANCELLED
    actions = _audit_actions(registered.url)
    assert ("queue.add", "sam") in actions and ("queue.cancel", "sam") in actions
    engine = make_engine(registered.url)
    assert verify_audit(engine).intact
    engine.dispose()


def test_a_technician_sees_the_queues_but_no_forms_and_is_refused(registered: Lab):
    app = on_page(app_signed_in("tina"), "runs")
    assert "may look at the rigs' runs and queues but not queue or cancel" in texts(app)
    assert not [b for b in app.button if str(b.key).startswith("FormSubmitter:")]
    engine = make_engine(registered.url)
    try:
        tina = sign_in(engine, "tina", "technician-pw-1")
        assert tina is not None
        with pytest.raises(NotAllowed, match=r"your role \(technician\) may not approve"):
            rig_queue.queue_protocol(engine, tina, rig_name="liver4", protocol_text=PROTOCOL, protocol_name="p.toml")
        assert queue.listing(engine) == []
    finally:
        engine.dispose()


def test_a_bad_protocol_is_refused_with_its_message_and_nothing_is_queued(registered: Lab):
    app = on_page(app_signed_in("sam"), "runs")
    app.selectbox(key="queue_rig").select("liver4")
    app.text_area(key="queue_text").input(PROTOCOL.replace('"chip1"', '"chip9"', 1))
    app.button(key="FormSubmitter:queue_form-Queue").click().run()
    assert not app.exception, [e.value for e in app.exception]
    [error] = [e.value for e in app.error]
    assert "pasted.toml line" in error and "chip9" in error
    assert _entries(registered.url) == []

    app.selectbox(key="queue_rig").select("bench-1")  # in the store, but no supervisor registered its file
    app.text_area(key="queue_text").input(PROTOCOL)
    app.button(key="FormSubmitter:queue_form-Queue").click().run()
    [error] = [e.value for e in app.error]
    assert error.startswith("rig 'bench-1' is not known to this lab; fix: use one of: liver4")
    assert _entries(registered.url) == []
    assert not any(action == "queue.add" for action, _ in _audit_actions(registered.url))
