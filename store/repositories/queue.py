"""The run queue: protocols waiting for their rig, claimed by a lab supervisor when the rig is free.

Every change of state is a compare-and-swap on the entry's state (``UPDATE … WHERE state = …``), so
two supervisors, or a supervisor and a person cancelling, never both win: the loser's call
returns False and it moves on. Callers write the audit entry in the same transaction.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, insert, or_, select, update
from sqlmodel import col

from store.errors import StoreError
from store.repositories.reading import new_id
from store.repositories.reading import read as _read
from store.schema import QueuedRun
from store.states import OPEN_QUEUE_STATES, QueueState


class UnknownQueueEntry(StoreError, LookupError):
    """A queue entry id that is not in this store."""


class QueueEntryNotStarting(StoreError):
    """A runner came to start a queue entry that is no longer claimed (a restarted supervisor re-queued it)."""


@dataclass(frozen=True)
class QueueEntry:
    """One queued protocol as people and supervisors read it."""

    id: int
    rig_name: str
    protocol_name: str
    protocol_sha256: str
    not_before_utc_s: float | None
    state: QueueState
    run_id: int | None
    queued_by: str
    queued_utc_s: float
    ended_by: str
    ended_utc_s: float | None
    note: str


_LISTED = (
    col(QueuedRun.id),
    col(QueuedRun.rig_name),
    col(QueuedRun.protocol_name),
    col(QueuedRun.protocol_sha256),
    col(QueuedRun.not_before_utc_s),
    col(QueuedRun.state),
    col(QueuedRun.run_id),
    col(QueuedRun.queued_by),
    col(QueuedRun.queued_utc_s),
    col(QueuedRun.ended_by),
    col(QueuedRun.ended_utc_s),
    col(QueuedRun.note),
)


def _entry(row: tuple[Any, ...]) -> QueueEntry:
    values = list(row)
    values[5] = QueueState(values[5])
    return QueueEntry(*values)


def add(
    connection: Connection,
    *,
    rig_name: str,
    protocol_text: str,
    protocol_name: str,
    queued_by: str,
    now_utc_s: float,
    not_before_utc_s: float | None = None,
) -> int:
    """Queue ``protocol_text`` for ``rig_name``; the new entry's id. Checking the protocol is the caller's job."""
    return new_id(
        connection.execute(
            insert(QueuedRun).values(
                rig_name=rig_name,
                protocol_name=protocol_name,
                protocol_text=protocol_text,
                protocol_sha256=hashlib.sha256(protocol_text.encode()).hexdigest(),
                not_before_utc_s=not_before_utc_s,
                state=QueueState.QUEUED,
                queued_by=queued_by,
                queued_utc_s=now_utc_s,
                ended_by="",
                note="",
            )
        )
    )


def get(source: Engine | Connection, entry_id: int) -> QueueEntry:
    row = _read(source, select(*_LISTED).where(col(QueuedRun.id) == entry_id)).first()
    if row is None:
        raise UnknownQueueEntry(f"there is no queue entry {entry_id} in this store; fix: see `chiptwin queue list`")
    return _entry(tuple(row))


def protocol_text(source: Engine | Connection, entry_id: int) -> str:
    """The protocol an entry will run, exactly as it was queued."""
    text = _read(source, select(col(QueuedRun.protocol_text)).where(col(QueuedRun.id) == entry_id)).scalar()
    if text is None:
        raise UnknownQueueEntry(f"there is no queue entry {entry_id} in this store; fix: see `chiptwin queue list`")
    return str(text)


def listing(
    source: Engine | Connection, *, rig_name: str | None = None, open_only: bool = False, limit: int | None = None
) -> list[QueueEntry]:
    """Entries in queue order (oldest first), optionally of one rig, optionally only those not yet ended."""
    query = select(*_LISTED).order_by(col(QueuedRun.id))
    if rig_name is not None:
        query = query.where(col(QueuedRun.rig_name) == rig_name)
    if open_only:
        query = query.where(col(QueuedRun.state).in_(sorted(OPEN_QUEUE_STATES)))
    if limit is not None:
        query = query.limit(limit)
    return [_entry(tuple(r)) for r in _read(source, query).all()]


def next_due(source: Engine | Connection, rig_name: str, now_utc_s: float) -> QueueEntry | None:
    """The oldest queued entry of ``rig_name`` whose time has come (queue order, not ``not_before`` order)."""
    query = (
        select(*_LISTED)
        .where(col(QueuedRun.rig_name) == rig_name, col(QueuedRun.state) == QueueState.QUEUED)
        .where(or_(col(QueuedRun.not_before_utc_s).is_(None), col(QueuedRun.not_before_utc_s) <= now_utc_s))
        .order_by(col(QueuedRun.id))
        .limit(1)
    )
    row = _read(source, query).first()
    return None if row is None else _entry(tuple(row))


def _move(connection: Connection, entry_id: int, from_state: QueueState, **values: object) -> bool:
    result = connection.execute(
        update(QueuedRun).where(col(QueuedRun.id) == entry_id, col(QueuedRun.state) == from_state).values(**values)
    )
    return result.rowcount == 1


def claim(connection: Connection, entry_id: int, *, by: str) -> bool:
    """queued → starting, for the supervisor ``by``; False when someone else claimed or cancelled it first."""
    return _move(connection, entry_id, QueueState.QUEUED, state=QueueState.STARTING, ended_by=by)


def release(connection: Connection, entry_id: int) -> bool:
    """starting → queued: a supervisor that claimed an entry but could not start it (its rig was busy) gives it back."""
    return _move(connection, entry_id, QueueState.STARTING, state=QueueState.QUEUED, ended_by="")


def mark_started(connection: Connection, entry_id: int, *, run_id: int, now_utc_s: float) -> bool:
    """starting → started: its run exists."""
    return _move(
        connection, entry_id, QueueState.STARTING, state=QueueState.STARTED, run_id=run_id, ended_utc_s=now_utc_s
    )


def link_run(connection: Connection, entry_id: int, *, run_id: int, now_utc_s: float) -> None:
    """starting → started, in the transaction that creates ``run_id`` (so an entry still ``starting`` never
    has a run); QueueEntryNotStarting (rolling that run back) when the entry is no longer claimed."""
    if not mark_started(connection, entry_id, run_id=run_id, now_utc_s=now_utc_s):
        state = connection.execute(select(col(QueuedRun.state)).where(col(QueuedRun.id) == entry_id)).scalar()
        raise QueueEntryNotStarting(
            f"queue entry {entry_id} is {state or 'not in this store'}, not starting: a supervisor re-queued or "
            "ended it meanwhile; nothing was started (the lab supervisor starts queue entries: `chiptwin lab serve`)"
        )


def mark_failed(connection: Connection, entry_id: int, *, reason: str, now_utc_s: float) -> bool:
    """starting → failed, with the reason a person will read."""
    return _move(connection, entry_id, QueueState.STARTING, state=QueueState.FAILED, note=reason, ended_utc_s=now_utc_s)


def cancel(connection: Connection, entry_id: int, *, by: str, reason: str, now_utc_s: float) -> bool:
    """queued → cancelled; False when it has already been claimed, started or ended (then it is the run's to abort)."""
    return _move(
        connection,
        entry_id,
        QueueState.QUEUED,
        state=QueueState.CANCELLED,
        ended_by=by,
        note=reason,
        ended_utc_s=now_utc_s,
    )
