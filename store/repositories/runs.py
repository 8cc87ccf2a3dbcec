"""Runs of a protocol on a rig: created, moved through their states, checkpointed, listed."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlmodel import col

from store.errors import StoreError
from store.repositories.reading import new_id
from store.repositories.reading import read as _read
from store.schema import ProtocolRun, Rig, Step
from store.states import FINAL_RUN_STATES, RunState


class UnknownRun(StoreError, LookupError):
    """A run id that is not in this store."""


def create(connection: Connection, rig_id: int, protocol_text: str, clock_rate: float) -> tuple[int, str]:
    """A new run in state ``created``, checkpoint at step 0: (its id, the protocol's SHA-256)."""
    sha = hashlib.sha256(protocol_text.encode()).hexdigest()
    run_id = new_id(
        connection.execute(
            insert(ProtocolRun).values(
                rig_id=rig_id,
                protocol_text=protocol_text,
                protocol_sha256=sha,
                state=RunState.CREATED,
                checkpoint_json=json.dumps({"step": 0}),
                clock_rate=clock_rate,
            )
        )
    )
    return run_id, sha


def get(source: Engine | Connection, run_id: int) -> ProtocolRun:
    row = _read(source, select(ProtocolRun).where(col(ProtocolRun.id) == run_id)).first()
    if row is None:
        raise UnknownRun(f"there is no run {run_id} in this store; fix: check the run id and --db")
    return ProtocolRun(**row._mapping)


def set_state(
    connection: Connection, run: ProtocolRun, state: RunState, now_utc_s: float, now_wall_utc_s: float | None = None
) -> bool:
    """Move ``run`` to ``state``; False (nothing written) once it has ended: a final state is final.

    ``now_utc_s`` is on the run's clock (days ahead on an accelerated rig); the wall-clock
    start and end are written beside it so a person can read when the run really happened."""
    if run.state in FINAL_RUN_STATES:
        return False
    wall_s = time.time() if now_wall_utc_s is None else now_wall_utc_s
    values: dict[str, Any] = {"state": RunState(state)}
    if state == RunState.RUNNING:
        values["started_utc_s"] = run.started_utc_s or now_utc_s
        values["started_wall_utc_s"] = run.started_wall_utc_s or wall_s
    if state in FINAL_RUN_STATES:
        values["ended_utc_s"] = now_utc_s
        values["ended_wall_utc_s"] = wall_s
    connection.execute(update(ProtocolRun).where(col(ProtocolRun.id) == run.id).values(**values))
    return True


def checkpoint(connection: Connection, run_id: int, point: dict[str, Any]) -> None:
    connection.execute(
        update(ProtocolRun).where(col(ProtocolRun.id) == run_id).values(checkpoint_json=json.dumps(point))
    )


def state(source: Engine | Connection, run_id: int) -> RunState | None:
    found = _read(source, select(col(ProtocolRun.state)).where(col(ProtocolRun.id) == run_id)).scalar()
    return None if found is None else RunState(found)


@dataclass(frozen=True)
class RunListing:
    """A run as the panel lists it: with its rig's name."""

    id: int
    rig: str
    rig_id: int
    state: RunState
    started_utc_s: float | None
    ended_utc_s: float | None
    clock_rate: float
    started_wall_utc_s: float | None = None
    ended_wall_utc_s: float | None = None


def listing(source: Engine | Connection, limit: int | None = None) -> list[RunListing]:
    """Every run, newest first, with its rig's name."""
    query = (
        select(
            col(ProtocolRun.id),
            col(Rig.name),
            col(ProtocolRun.rig_id),
            col(ProtocolRun.state),
            col(ProtocolRun.started_utc_s),
            col(ProtocolRun.ended_utc_s),
            col(ProtocolRun.clock_rate),
            col(ProtocolRun.started_wall_utc_s),
            col(ProtocolRun.ended_wall_utc_s),
        )
        .join(Rig, col(Rig.id) == col(ProtocolRun.rig_id))
        .order_by(col(ProtocolRun.id).desc())
    )
    if limit is not None:
        query = query.limit(limit)
    rows = [tuple(r) for r in _read(source, query).all()]
    return [RunListing(r[0], r[1], r[2], RunState(r[3]), r[4], r[5], r[6], r[7], r[8]) for r in rows]


def latest_ids(source: Engine | Connection, n: int) -> list[int]:
    """The ``n`` newest run ids (a message that names a wrong run can list the real ones)."""
    return [
        int(r[0])
        for r in (
            tuple(row)
            for row in _read(source, select(col(ProtocolRun.id)).order_by(col(ProtocolRun.id).desc()).limit(n)).all()
        )
    ]


def steps(source: Engine | Connection, run_id: int) -> list[Step]:
    """The steps a run has started, in order (the runner writes one row as each step starts)."""
    query = select(Step).where(col(Step.run_id) == run_id).order_by(col(Step.index))
    return [Step(**r._mapping) for r in _read(source, query).all()]
