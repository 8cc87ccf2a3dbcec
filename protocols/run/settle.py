"""A person settles a dose the intent log could not decide, so a parked run can go on.

The intent log parks a run rather than guess when a dose's outcome cannot be read from the pump
(the pump was lost with the dose in flight, its counter reset, a partial dose). Only a person who
has looked at the chip and the syringe can say what went in: ``settle_dose`` records that answer —
the volume dispensed (the dose is confirmed with that ledger volume) or "not dosed" (the intent
fails, and `chiptwin resume` doses again) — sealed and audited under the person's name. It refuses
while a runner still drives the run.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

from sqlalchemy import Engine, insert, select, update

from protocols.errors import ProtocolError
from protocols.run.intents import UNDECIDED, dose_event_values
from store.audit import seal_row
from store.lease import refuse_if_run_alive
from store.schema import Command, DoseEvent

OPEN_STATES = ("pending", "sent")


@dataclass(frozen=True)
class Settled:
    key: str
    state: str  # confirmed | failed
    ledger_ul: float | None


def undecided_doses(engine: Engine, run_id: int) -> list[Command]:
    """The run's doses waiting for a person, oldest first."""
    with engine.connect() as c:
        rows = c.execute(
            select(Command).where(Command.run_id == run_id, Command.state.in_(OPEN_STATES)).order_by(Command.id)
        ).all()
    return [Command(**r._mapping) for r in rows if r.error.startswith(UNDECIDED)]


def settle_dose(
    engine: Engine, run_id: int, key: str, *, dispensed_ul: float | None, actor: str, reason: str
) -> Settled:
    """Record what a person found: ``dispensed_ul`` went into the chip, or None for "not dosed"."""
    refuse_if_run_alive(engine, run_id)
    if not reason.strip():
        raise ProtocolError("give a reason (what you checked): it is kept with the settled dose")
    if dispensed_ul is not None and not (math.isfinite(dispensed_ul) and 0 < dispensed_ul <= 1e6):
        raise ProtocolError(
            f"--dispensed-ul {dispensed_ul}: give the volume that went into the chip in µL (> 0), or --not-dosed"
        )
    now = time.time()
    with engine.begin() as c:
        found = c.execute(select(Command).where(Command.run_id == run_id, Command.idempotency_key == key)).first()
        if found is None:
            waiting = ", ".join(r.idempotency_key for r in undecided_doses(engine, run_id)) or "none"
            raise ProtocolError(f"run {run_id} has no dose {key!r}; doses waiting for a person: {waiting}")
        row = Command(**found._mapping)
        if row.state not in OPEN_STATES or not row.error.startswith(UNDECIDED):
            raise ProtocolError(
                f"dose {key} is {row.state} and not waiting for a person; only an undecided dose is settled"
            )
        note = f"settled by {actor}: {reason.strip()}"
        if dispensed_ul is None:
            c.execute(
                update(Command)
                .where(Command.id == row.id)
                .values(state="failed", error=f"not dosed, {note}", updated_utc_s=now)
            )
            seal_row(c, "command", row.id, actor, "dose.settled_not_dosed", {"key": key, "reason": reason}, t_utc_s=now)
            return Settled(key, "failed", None)
        c.execute(update(Command).where(Command.id == row.id).values(state="confirmed", error=note, updated_utc_s=now))
        dose_id = c.execute(
            insert(DoseEvent).values(**dose_event_values(row, json.loads(row.args_json), dispensed_ul))
        ).inserted_primary_key[0]
        payload = {"key": key, "requested_ul": row.requested_amount, "ledger_ul": dispensed_ul, "reason": reason}
        seal_row(c, "command", row.id, actor, "dose.settled", payload, t_utc_s=now)
        seal_row(
            c,
            "doseevent",
            dose_id,
            actor,
            "dose.recorded",
            {"command_id": row.id, "ledger_ul": dispensed_ul},
            t_utc_s=now,
        )
    return Settled(key, "confirmed", dispensed_ul)
