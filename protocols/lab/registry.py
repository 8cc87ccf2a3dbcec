"""What a supervisor reads and writes in the store about its rigs: their files, their runs, parking.

Registering a rig stores its rig file's text in its ``rig`` row, which is what makes it known to
the queue (protocols.lab.queueing). A rig's *open* runs are those not in a final state: a
``running``/``created`` one with no live runner is resumed; a ``parked``/``paused`` one waits for a
person, and its rig starts nothing new until then.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine, insert, select, update
from sqlmodel import col

from protocols.lab.lab_file import Lab
from store.audit import append_audit
from store.repositories import queue, runs
from store.schema import Alarm
from store.schema import Rig as RigRow
from store.states import QueueState, RunState

RESUMABLE = frozenset({RunState.RUNNING, RunState.CREATED})


@dataclass(frozen=True)
class OpenRun:
    run_id: int
    state: RunState

    @property
    def resumable(self) -> bool:
        return self.state in RESUMABLE


def register_rig_files(engine: Engine, lab: Lab) -> None:
    """Each rig's row holds its current rig file (created if new): the queue checks protocols against it."""
    now = time.time()
    with engine.begin() as c:
        for lab_rig in lab.rigs:
            text = lab_rig.rig_path.read_text(encoding="utf-8")
            found = c.execute(select(col(RigRow.id)).where(col(RigRow.name) == lab_rig.name)).scalar()
            if found is None:
                c.execute(
                    insert(RigRow).values(
                        name=lab_rig.name,
                        description=lab_rig.rig.spec.rig.description,
                        config_toml=text,
                        created_utc_s=now,
                    )
                )
            else:
                c.execute(update(RigRow).where(col(RigRow.id) == found).values(config_toml=text))


def open_runs(engine: Engine, rig_name: str) -> list[OpenRun]:
    """The rig's runs not yet ended, oldest first."""
    return [OpenRun(run_id, state) for run_id, state in runs.open_on_rig(engine, rig_name)]


def park(engine: Engine, run_id: int, *, supervisor: str, reason: str) -> None:
    """Park a run that keeps dying: it waits for a person, with a critical alarm saying why (audited)."""
    now = time.time()
    with engine.begin() as c:
        run = runs.get(c, run_id)
        if not runs.set_state(c, run, RunState.PARKED, now):
            return  # it ended meanwhile: nothing to park
        inserted = c.execute(
            insert(Alarm).values(
                rig_id=run.rig_id, run_id=run_id, t_utc_s=now, severity="critical", source="supervisor", message=reason
            )
        ).inserted_primary_key
        assert inserted is not None
        alarm_id = inserted[0]
        payload = {"run_id": run_id, "reason": reason}
        append_audit(c, supervisor, "run.parked_by_supervisor", entity="alarm", entity_id=alarm_id, payload=payload)


def requeue_orphans(engine: Engine, rig_name: str, *, supervisor: str) -> list[int]:
    """Put back on the queue the rig's entries left ``starting`` by a supervisor that died between claiming
    them and its runner creating their run; their ids (audited).

    An entry is linked to its run in the commit that creates the run (``queue.link_run``), so one still
    ``starting`` has no run: nothing of it ran, and starting it again cannot dose twice. The caller calls
    this only when no live runner holds the rig; a late runner of the entry is refused by ``link_run``.
    """
    now = time.time()
    requeued = []
    for entry in queue.listing(engine, rig_name=rig_name, open_only=True):
        if entry.state is not QueueState.STARTING:
            continue
        with engine.begin() as c:
            if not queue.release(c, entry.id):
                continue  # its runner linked it meanwhile
            payload = {"claimed_by": entry.ended_by, "reason": "claimed, but its runner never created its run"}
            append_audit(
                c, supervisor, "queue.requeued", entity="queuedrun", entity_id=entry.id, payload=payload, t_utc_s=now
            )
        requeued.append(entry.id)
    return requeued
