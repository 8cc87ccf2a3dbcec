"""Runs of a protocol on a rig: created, moved through their states, checkpointed, listed."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, insert, select, update
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
    connection: Connection, run: ProtocolRun, state: RunState, now_utc_s: float, wall_utc_s: float | None = None
) -> bool:
    """Move ``run`` to ``state``; False (nothing written) once it has ended: a final state is final.

    ``now_utc_s`` is on the run's clock (simulated for an accelerated rig); the start and end are
    also kept on the wall clock (``wall_utc_s``, now by default), which is what a person reads.
    """
    if run.state in FINAL_RUN_STATES:
        return False
    wall = time.time() if wall_utc_s is None else wall_utc_s
    values: dict[str, Any] = {"state": RunState(state)}
    if state == RunState.RUNNING:
        values["started_utc_s"] = run.started_utc_s or now_utc_s
        values["started_wall_utc_s"] = run.started_wall_utc_s or wall
    if state in FINAL_RUN_STATES:
        values["ended_utc_s"] = now_utc_s
        values["ended_wall_utc_s"] = wall
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
    started_utc_s: float | None  # on the run's clock
    ended_utc_s: float | None
    clock_rate: float
    started_wall_utc_s: float | None = None  # on the wall clock
    ended_wall_utc_s: float | None = None


def _listing_query() -> Any:  # a Select of the listing columns
    return (
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


def _listing_row(r: tuple[Any, ...]) -> RunListing:
    return RunListing(r[0], r[1], r[2], RunState(r[3]), r[4], r[5], r[6], r[7], r[8])


def listing(source: Engine | Connection, limit: int | None = None) -> list[RunListing]:
    """Every run, newest first, with its rig's name."""
    query = _listing_query()
    if limit is not None:
        query = query.limit(limit)
    return [_listing_row(tuple(r)) for r in _read(source, query).all()]


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


def latest_of_rig(source: Engine | Connection, rig_id: int) -> RunListing | None:
    """The rig's newest run (None before its first), as the OPC UA endpoint shows it."""
    query = _listing_query().where(col(ProtocolRun.rig_id) == rig_id).limit(1)
    r = _read(source, query).first()
    return None if r is None else _listing_row(tuple(r))


def open_on_rig(source: Engine | Connection, rig_name: str) -> list[tuple[int, RunState]]:
    """The runs of rig ``rig_name`` not yet ended (id, state), oldest first: a lab supervisor's to resume or leave."""
    query = (
        select(col(ProtocolRun.id), col(ProtocolRun.state))
        .join(Rig, col(Rig.id) == col(ProtocolRun.rig_id))
        .where(col(Rig.name) == rig_name, col(ProtocolRun.state).not_in(sorted(FINAL_RUN_STATES)))
        .order_by(col(ProtocolRun.id))
    )
    rows: list[Any] = list(_read(source, query).all())
    return [(int(row[0] or 0), RunState(row[1])) for row in rows]


@dataclass(frozen=True)
class NewestRun:
    """A rig's newest run and the newest step it has started (step fields None before its first step)."""

    rig_id: int
    run_id: int
    state: str
    step_index: int | None
    step_kind: str | None
    step_state: str | None


def newest_per_rig(engine: Engine) -> list[NewestRun]:
    """Every rig's newest run with its newest started step, in two statements (rigs without a run absent)."""
    newest = select(func.max(ProtocolRun.id)).group_by(ProtocolRun.rig_id)  # type: ignore[arg-type]
    with engine.connect() as connection:
        latest = connection.execute(
            select(ProtocolRun.rig_id, ProtocolRun.id, ProtocolRun.state).where(col(ProtocolRun.id).in_(newest))  # type: ignore[call-overload]
        ).all()
        last = (
            select(Step.run_id, func.max(Step.index).label("index"))  # type: ignore[call-overload]
            .where(col(Step.run_id).in_([r.id for r in latest]))
            .group_by(Step.run_id)
            .subquery()
        )
        steps = connection.execute(
            select(Step.run_id, Step.index, Step.kind, Step.state).join(  # type: ignore[call-overload]
                last, and_(Step.run_id == last.c.run_id, Step.index == last.c.index)
            )
        ).all()
    step_of = {run_id: (int(index), str(kind), str(state)) for run_id, index, kind, state in steps}  # .index is tuple's
    return [NewestRun(r.rig_id, r.id, str(r.state), *step_of.get(r.id, (None, None, None))) for r in latest]
