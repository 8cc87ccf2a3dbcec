"""The audit trail: append-only, each entry carrying the hash of the one before.

Editing, deleting or reordering an entry breaks the chain at that entry, and
``verify_audit`` names the first broken link. The database refuses UPDATE and DELETE on
the table as well (triggers installed by the first migration), so tampering needs
administrator rights *and* leaves a visible break.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any, Callable

from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError

from store.errors import AuditError
from store.schema import AuditEntry

GENESIS_HASH = "0" * 64
_APPEND_ATTEMPTS = 20


def entry_hash(seq: int, t_utc_s: float, actor: str, action: str, entity: str, entity_id: str,
               payload_json: str, prev_hash: str) -> str:
    """SHA-256 over a canonical JSON list of the entry's content and its predecessor's hash."""
    content = [seq, repr(float(t_utc_s)), actor, action, entity, entity_id, payload_json, prev_hash]
    return hashlib.sha256(json.dumps(content, ensure_ascii=False).encode()).hexdigest()


def append_audit(
    connection: Connection, actor: str, action: str, *, entity: str = "", entity_id: str | int = "",
    payload: dict[str, Any] | None = None, t_utc_s: float | None = None,
) -> str:
    """Append one entry inside the caller's transaction (so it commits with what it records).

    Two writers racing for the same place collide on the primary key; the loser's
    transaction fails and is retried by ``audit`` (or by the caller).
    """
    last = connection.execute(
        select(AuditEntry.seq, AuditEntry.entry_hash).order_by(AuditEntry.seq.desc()).limit(1)
    ).first()
    seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
    when = time.time() if t_utc_s is None else float(t_utc_s)
    payload_json = json.dumps(payload or {}, sort_keys=True, default=str)
    digest = entry_hash(seq, when, actor, action, entity, str(entity_id), payload_json, prev_hash)
    connection.execute(insert(AuditEntry).values(
        seq=seq, t_utc_s=when, actor=actor, action=action, entity=entity, entity_id=str(entity_id),
        payload_json=payload_json, prev_hash=prev_hash, entry_hash=digest,
    ))
    return digest


def audit(engine: Engine, actor: str, action: str, **details: Any) -> str:
    """Append one entry in its own transaction, retrying when another writer got there first."""
    return _with_retry(engine, lambda connection: append_audit(connection, actor, action, **details))


def _with_retry(engine: Engine, work: Callable[[Connection], str]) -> str:
    for attempt in range(_APPEND_ATTEMPTS):
        try:
            with engine.begin() as connection:
                return work(connection)
        except (IntegrityError, OperationalError):
            time.sleep(min(0.001 * 2**attempt, 0.2))
    raise AuditError(f"could not append to the audit trail after {_APPEND_ATTEMPTS} attempts; "
                     "the database is too busy or the trail is damaged — run `chiptwin audit verify`")


@dataclass(frozen=True)
class BrokenLink:
    seq: int
    t_utc_s: float
    actor: str
    action: str
    reason: str


@dataclass(frozen=True)
class AuditReport:
    entries_checked: int
    last_hash: str
    first_broken: BrokenLink | None

    @property
    def intact(self) -> bool:
        return self.first_broken is None


def verify_audit(engine: Engine) -> AuditReport:
    """Walk the chain from the start; stop at the first entry that does not hold."""
    expected_seq, prev_hash, checked = 1, GENESIS_HASH, 0
    with engine.connect() as connection:
        # Streamed (server-side cursor on PostgreSQL): a long trail never sits in memory.
        rows = connection.execution_options(yield_per=5000).execute(select(AuditEntry).order_by(AuditEntry.seq))
        with rows:
            for row in rows:
                reason = _link_problem(row, expected_seq, prev_hash)
                if reason:
                    broken = BrokenLink(row.seq, row.t_utc_s, row.actor, row.action, reason)
                    return AuditReport(checked, prev_hash, broken)
                expected_seq, prev_hash, checked = row.seq + 1, row.entry_hash, checked + 1
    return AuditReport(checked, prev_hash, None)


def _link_problem(row: Any, expected_seq: int, prev_hash: str) -> str:
    if row.seq != expected_seq:
        return f"entries {expected_seq}–{row.seq - 1} are missing (deleted)"
    if row.prev_hash != prev_hash:
        return "it does not point at the entry before it (an entry before was replaced or removed)"
    recomputed = entry_hash(row.seq, row.t_utc_s, row.actor, row.action, row.entity, row.entity_id,
                            row.payload_json, row.prev_hash)
    if recomputed != row.entry_hash:
        return "its content does not match its hash (edited after it was written)"
    return ""
