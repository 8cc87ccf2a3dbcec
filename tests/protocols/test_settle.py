"""A person settles a dose the intent log could not decide: what they found is recorded (sealed, under their
name), a dose not waiting for a person is never rewritten, and "not dosed" lets resume dose again."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import insert, select

from protocols.errors import ProtocolError
from protocols.run.intents import UNDECIDED
from protocols.run.settle import settle_dose, undecided_doses
from store.audit import verify_audit
from store.engine import make_engine
from store.migrate import upgrade
from store.repositories import runs
from store.schema import AuditEntry, Chip, Command, DoseEvent, Rig

KEY = "run1/step0/chip1/a1"


@pytest.fixture
def parked(tmp_path):
    """A run with one dose the pump could not tell (its counter reset while the dose was in flight)."""
    engine = make_engine(str(tmp_path / "lab.db"), create=True)
    upgrade(engine)
    with engine.begin() as c:
        rig_id = c.execute(insert(Rig).values(name="liver4", created_utc_s=1.0)).inserted_primary_key[0]
        chip_id = c.execute(insert(Chip).values(rig_id=rig_id, name="chip1", organ="liver")).inserted_primary_key[0]
        run_id, _ = runs.create(c, rig_id, "[protocol]", 1.0)
        args = {"chip_id": chip_id, "drug": "acetaminophen", "stock_um": 1000.0, "pump": "pump1", "baseline_ul": 0.0}
        c.execute(insert(Command).values(
            run_id=run_id, idempotency_key=KEY, command="dispense", args_json=json.dumps(args), state="sent",
            requested_amount=110.0, amount_unit="uL", error=f"{UNDECIDED}pump1 lost with the dose in flight",
            created_utc_s=5.0, updated_utc_s=6.0,
        ))  # fmt: skip
    yield engine, run_id
    engine.dispose()


def _command(engine) -> Command:  # noqa: ANN001
    with engine.connect() as c:
        return Command(**c.execute(select(Command).where(Command.idempotency_key == KEY)).one()._mapping)


def test_a_settled_volume_becomes_the_ledger_under_the_persons_name(parked) -> None:
    engine, run_id = parked
    assert [d.idempotency_key for d in undecided_doses(engine, run_id)] == [KEY]
    done = settle_dose(engine, run_id, KEY, dispensed_ul=104.5, actor="tina", reason="syringe read 104.5 uL")
    assert (done.state, done.ledger_ul) == ("confirmed", 104.5)
    assert _command(engine).state == "confirmed" and "settled by tina" in _command(engine).error
    with engine.connect() as c:
        event = c.execute(select(DoseEvent)).one()
        sealed = c.execute(select(AuditEntry).where(AuditEntry.action == "dose.settled")).one()
    assert event.volume_ml == pytest.approx(0.1045) and event.amount_nmol == pytest.approx(104.5)  # 1 mM stock
    assert sealed.actor == "tina" and undecided_doses(engine, run_id) == []
    assert verify_audit(engine).intact
    with pytest.raises(ProtocolError, match="not waiting for a person"):  # settled once, never rewritten
        settle_dose(engine, run_id, KEY, dispensed_ul=50.0, actor="tom", reason="second thoughts")


def test_not_dosed_fails_the_intent_so_resume_doses_again(parked) -> None:
    engine, run_id = parked
    done = settle_dose(engine, run_id, KEY, dispensed_ul=None, actor="tina", reason="syringe still full")
    assert done.state == "failed" and _command(engine).state == "failed"
    with engine.connect() as c:
        assert c.execute(select(DoseEvent)).all() == []
    assert verify_audit(engine).intact


@pytest.mark.parametrize(
    ("key", "dispensed", "reason", "message"),
    [
        ("run1/step0/chip9/a1", 10.0, "looked", "doses waiting for a person: run1/step0/chip1/a1"),
        (KEY, -5.0, "looked", "in µL"),
        (KEY, float("nan"), "looked", "in µL"),
        (KEY, 10.0, "  ", "give a reason"),
    ],
)
def test_what_cannot_be_settled_is_refused_in_one_line(parked, key, dispensed, reason, message) -> None:
    engine, run_id = parked
    with pytest.raises(ProtocolError, match=message):
        settle_dose(engine, run_id, key, dispensed_ul=dispensed, actor="tina", reason=reason)
    assert _command(engine).state == "sent"  # nothing was written
