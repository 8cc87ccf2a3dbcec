"""What a run writes to the store: the rig's rows, the run, its steps, alarms, audit entries.

One ``Recorder`` per runner process. Every write goes through ``Recorder.tx()``: one
process-wide lock around one transaction, so the runner's threads (steps, poller sink,
request watcher) never fight over SQLite's single writer, and a write that records an
action commits together with its audit entry.
"""

from __future__ import annotations

import json
import os
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from sqlalchemy import Connection, Engine, insert, select, update

from instruments.rig.model import Rig
from store.audit import append_audit, seal_row
from store.repositories import polls, queue, runs
from store.schema import Alarm, Channel, Chip, Instrument, ProtocolRun, Step
from store.schema import Rig as RigRow
from store.states import FINAL_RUN_STATES, RunState

ACTOR = "runner"
FINAL_STATES = FINAL_RUN_STATES  # a run never leaves these


class Recorder:
    def __init__(self, engine: Engine, now_s: Callable[[], float]) -> None:
        self.engine, self.now_s = engine, now_s
        self._lock = threading.Lock()
        self.alarm_hook: Callable[[str, str, str], None] | None = None  # (severity, source, message)

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        with self._lock, self.engine.begin() as connection:
            yield connection

    def audit(
        self,
        connection: Connection,
        action: str,
        entity: str = "",
        entity_id: Any = "",
        payload: dict | None = None,
        actor: str = ACTOR,
    ) -> None:
        append_audit(
            connection, actor, action, entity=entity, entity_id=entity_id, payload=self._with_rig_time(payload)
        )

    def seal(
        self,
        connection: Connection,
        table: str,
        row_id: Any,
        action: str,
        payload: dict | None = None,
        actor: str = ACTOR,
    ) -> None:
        """An audit entry carrying the hash of a regulated row (command, doseevent, approval) as
        written in this transaction, so `chiptwin audit verify` detects a later edit of it."""
        seal_row(connection, table, row_id, actor, action, self._with_rig_time(payload))

    def _with_rig_time(self, payload: dict | None) -> dict | None:
        """Audit entries carry true wall-clock time (the chain's own); an accelerated rig clock's
        time, which readings and doses use, goes in the payload so the two can be matched."""
        rig_s = self.now_s()
        if abs(rig_s - time.time()) < 1.0:
            return payload
        return {**(payload or {}), "rig_clock_utc_s": rig_s}

    def audit_entry(self, action: str, payload: dict, run_id: int) -> None:
        with self.tx() as c:
            self.audit(c, action, "protocolrun", run_id, payload)

    # -- the rig --------------------------------------------------------------------------
    def sync_rig(self, rig: Rig) -> dict[str, dict[str, int]]:
        """Rig, chip, instrument and channel rows for ``rig`` (created once); ids by name."""
        text = rig.path.read_text(encoding="utf-8") if rig.path else ""
        with self.tx() as c:
            rig_id = c.execute(select(RigRow.id).where(RigRow.name == rig.name)).scalar()
            if rig_id is None:
                rig_id = c.execute(
                    insert(RigRow).values(
                        name=rig.name,
                        description=rig.spec.rig.description,
                        config_toml=text,
                        created_utc_s=self.now_s(),
                    )
                ).inserted_primary_key[0]
            chips = _ensure(
                c,
                Chip,
                rig_id,
                {
                    ch.name: dict(
                        organ=ch.organ,
                        n_cells_million=ch.n_cells_million,
                        v_medium_ml=ch.v_medium_ml,
                        v_cell_ml=ch.v_cell_ml,
                    )
                    for ch in rig.chips
                },
            )
            instruments = _ensure(c, Instrument, rig_id, {i.name: dict(driver=i.driver) for i in rig.instruments})
            channels = _ensure(
                c,
                Channel,
                rig_id,
                {
                    ch.name: dict(
                        instrument_id=instruments[ch.instrument],
                        chip_id=chips.get(ch.chip) if ch.chip else None,
                        quantity=ch.measurement,
                        unit=_store_unit(ch.unit),
                        poll_period_s=ch.poll_period_s,
                    )
                    for ch in rig.channels
                },
            )
        return {"rig": {rig.name: rig_id}, "chips": chips, "instruments": instruments, "channels": channels}

    # -- the run --------------------------------------------------------------------------
    def create_run(self, rig_id: int, protocol_text: str, clock_rate: float, queue_entry: int | None = None) -> int:
        """A new run; with ``queue_entry``, that entry is marked started in the same transaction."""
        with self.tx() as c:
            run_id, sha = runs.create(c, rig_id, protocol_text, clock_rate)
            if queue_entry is not None:
                queue.link_run(c, queue_entry, run_id=run_id, now_utc_s=time.time())  # wall clock, like the queue
            self.audit(c, "run.created", "protocolrun", run_id, {"sha256": sha})
        return run_id

    def run_row(self, run_id: int) -> ProtocolRun:
        return runs.get(self.engine, run_id)

    def set_state(self, run_id: int, state: RunState | str, why: str = "", actor: str = ACTOR) -> bool:
        """Record the run's new state; False (nothing written) once the run has ended: an
        aborted run stays aborted, whichever thread reports a later state."""
        state = RunState(state)
        with self.tx() as c:
            if not runs.set_state(c, runs.get(c, run_id), state, self.now_s()):
                return False
            self.audit(c, f"run.{state}", "protocolrun", run_id, {"why": why} if why else None, actor=actor)
        return True

    def checkpoint(self, run_id: int, point: dict[str, Any]) -> None:
        with self.tx() as c:
            runs.checkpoint(c, run_id, point)

    def step_started(self, run_id: int, index: int, kind: str, detail: dict | None = None) -> None:
        with self.tx() as c:
            found = c.execute(select(Step.id).where(Step.run_id == run_id, Step.index == index)).scalar()
            if found is None:
                c.execute(
                    insert(Step).values(
                        run_id=run_id,
                        index=index,
                        kind=kind,
                        state="running",
                        detail_json=json.dumps(detail or {}),
                        started_utc_s=self.now_s(),
                    )
                )

    def step_ended(self, run_id: int, index: int, state: str = "done", detail: dict | None = None) -> None:
        values: dict[str, Any] = {"state": state, "ended_utc_s": self.now_s()}
        if detail is not None:
            values["detail_json"] = json.dumps(detail, default=str)
        with self.tx() as c:
            c.execute(update(Step).where(Step.run_id == run_id, Step.index == index).values(**values))

    # -- the poll ledger (store.repositories.polls) --------------------------------------------
    def open_poll_session(self, run_id: int) -> int:
        """This process's poller on the run (store.repositories.polls)."""
        with self.tx() as c:
            return polls.open_session(c, run_id, os.getpid(), self.now_s())

    def poll_schedule(self, session_id: int, schedule: dict[int, tuple[float, float]]) -> None:
        """Each channel id's (slot 0 due time, period) in the session, on the run's clock."""
        with self.tx() as c:
            polls.add_schedule(c, session_id, schedule)

    def poll_gaps(self, session_id: int, gaps: list[polls.GapRow]) -> None:
        with self.tx() as c:
            polls.add_gaps(c, session_id, gaps)

    def close_poll_session(self, session_id: int) -> None:
        with self.tx() as c:
            polls.close_session(c, session_id, self.now_s())

    def instrument_states(self, states: dict[int, str]) -> None:
        """Instrument id → its connection state (ok / degraded / reconnecting / lost), as the drivers report it."""
        with self.tx() as c:
            for instrument_id, state in states.items():
                c.execute(update(Instrument).where(Instrument.id == instrument_id).values(connection_state=state))

    def alarm(self, rig_id: int | None, run_id: int | None, severity: str, source: str, message: str) -> None:
        with self.tx() as c:
            alarm_id = c.execute(
                insert(Alarm).values(
                    rig_id=rig_id,
                    run_id=run_id,
                    t_utc_s=self.now_s(),
                    severity=severity,
                    source=source,
                    message=message,
                )
            ).inserted_primary_key[0]
            self.audit(
                c, "alarm.raised", "alarm", alarm_id, {"severity": severity, "source": source, "message": message}
            )
        if self.alarm_hook is not None:
            self.alarm_hook(severity, source, message)


def _store_unit(unit: str) -> str:
    return "percent" if unit.strip().startswith("%") else unit


def _ensure(c: Connection, table: Any, rig_id: int, wanted: dict[str, dict]) -> dict[str, int]:
    ids = dict(c.execute(select(table.name, table.id).where(table.rig_id == rig_id)).all())
    for name, values in wanted.items():
        if name not in ids:
            ids[name] = c.execute(insert(table).values(rig_id=rig_id, name=name, **values)).inserted_primary_key[0]
    return ids
