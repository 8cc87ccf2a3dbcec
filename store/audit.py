"""The audit trail: append-only, each entry carrying the hash of the one before.

Three layers, each catching what the one before cannot:
- the chain: editing, deleting or reordering an entry breaks it at that entry (and the database
  refuses UPDATE and DELETE on the table: triggers installed by the first migration);
- the anchor (``store.audit_anchor``): the head, HMAC'd with a key the database does not hold, in
  a file outside it, so a deleted tail or a chain recomputed after an edit is caught too;
- seals: every insert or update of a regulated row (approval, dose event, command, user, role) is
  followed, in the same transaction, by an entry carrying a canonical hash of the row
  (``seal_row``), so an edited row, a row written behind the program's back and a removed row are
  named by ``verify_audit``.
"""

from __future__ import annotations

import hashlib
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy import text as sql_text
from sqlalchemy.exc import IntegrityError, OperationalError

from store.audit_anchor import Anchor, anchor_path, key_path, note_append, read_anchors, read_key
from store.errors import AuditError
from store.schema import Approval, AuditEntry, Command, DoseEvent, Role, User

GENESIS_HASH = "0" * 64
_APPEND_ATTEMPTS = 20
_PG_AUDIT_LOCK = 0x43687454  # pg_advisory_xact_lock key of the audit trail ("ChtT")


def entry_hash(
    seq: int, t_utc_s: float, actor: str, action: str, entity: str, entity_id: str, payload_json: str, prev_hash: str
) -> str:
    """SHA-256 over a canonical JSON list of the entry's content and its predecessor's hash."""
    content = [seq, repr(float(t_utc_s)), actor, action, entity, entity_id, payload_json, prev_hash]
    return hashlib.sha256(json.dumps(content, ensure_ascii=False).encode()).hexdigest()


def append_audit(
    connection: Connection,
    actor: str,
    action: str,
    *,
    entity: str = "",
    entity_id: str | int = "",
    payload: dict[str, Any] | None = None,
    t_utc_s: float | None = None,
) -> str:
    """Append one entry inside the caller's transaction (so it commits with what it records).

    Two writers racing for the same place collide on the primary key; the loser's
    transaction fails and is retried by ``audit`` (or by the caller).
    """
    if connection.dialect.name == "postgresql":  # several runners on one store: append one at a time
        connection.execute(sql_text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_AUDIT_LOCK})
    last = connection.execute(
        select(AuditEntry.seq, AuditEntry.entry_hash).order_by(AuditEntry.seq.desc()).limit(1)
    ).first()
    seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
    when = time.time() if t_utc_s is None else float(t_utc_s)
    payload_json = json.dumps(payload or {}, sort_keys=True, default=str)
    digest = entry_hash(seq, when, actor, action, entity, str(entity_id), payload_json, prev_hash)
    connection.execute(
        insert(AuditEntry).values(
            seq=seq,
            t_utc_s=when,
            actor=actor,
            action=action,
            entity=entity,
            entity_id=str(entity_id),
            payload_json=payload_json,
            prev_hash=prev_hash,
            entry_hash=digest,
        )
    )
    note_append(connection)  # the head is anchored once this transaction has committed
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
    raise AuditError(
        f"could not append to the audit trail after {_APPEND_ATTEMPTS} attempts; "
        "the database is too busy or the trail is damaged — run `chiptwin audit verify`"
    )


# ------------------------------------------------------------------ seals of regulated rows

REGULATED = {"approval": Approval, "doseevent": DoseEvent, "command": Command, "user": User, "role": Role}
ROW_HASH = "row_sha256"
# The first migration seeds these roles without an entry; until a role is changed through the
# program (and sealed), verification holds it to exactly this content.
SEEDED = {
    ("role", "technician"): {
        "name": "technician",
        "can_control": True,
        "can_approve": False,
        "can_administer": False,
        "description": "runs experiments: start, pause, resume, abort",
    },
    ("role", "scientist"): {
        "name": "scientist",
        "can_control": True,
        "can_approve": True,
        "can_administer": False,
        "description": "also approves or rejects the twin's proposals",
    },
    ("role", "admin"): {
        "name": "admin",
        "can_control": True,
        "can_approve": True,
        "can_administer": True,
        "description": "also manages users and rigs",
    },
}


def _primary_key(table: str):
    try:
        model = REGULATED[table]
    except KeyError:
        raise AuditError(f"{table!r} is not a regulated table; one of {', '.join(REGULATED)}") from None
    return model, next(iter(model.__table__.primary_key.columns))


def row_sha256(table: str, row: Mapping[str, Any]) -> str:
    """SHA-256 of the row's columns as canonical JSON. NULL columns are left out, so a migration
    that adds a nullable column does not unseal every existing row."""
    content = {name: value for name, value in row.items() if value is not None}
    text = json.dumps([table, content], sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def seal_row(
    connection: Connection,
    table: str,
    row_id: Any,
    actor: str,
    action: str,
    extra_payload: dict[str, Any] | None = None,
    *,
    t_utc_s: float | None = None,
) -> str:
    """Append an entry carrying the hash of ``table``'s row ``row_id`` as this transaction sees it.

    Call it after every insert or update of a regulated row, inside the same transaction.
    """
    model, key = _primary_key(table)
    row = connection.execute(select(model.__table__).where(key == row_id)).mappings().first()
    if row is None:
        raise AuditError(f"cannot seal {table} {row_id}: there is no such row in this transaction")
    payload = {**(extra_payload or {}), ROW_HASH: row_sha256(table, row)}
    return append_audit(connection, actor, action, entity=table, entity_id=row_id, payload=payload, t_utc_s=t_utc_s)


def seal_deleted(
    connection: Connection,
    table: str,
    row_id: Any,
    actor: str,
    action: str,
    extra_payload: dict[str, Any] | None = None,
) -> str:
    """Record that the program removed a regulated row on purpose (a removal without one is tampering)."""
    _primary_key(table)
    payload = {**(extra_payload or {}), ROW_HASH: None}
    return append_audit(connection, actor, action, entity=table, entity_id=row_id, payload=payload)


def _unsealed(connection: Connection) -> list[tuple[str, Any]]:
    """(table, primary key) of every regulated row that no entry seals."""
    sealed = {
        (e, i)
        for e, i, p in connection.execute(select(AuditEntry.entity, AuditEntry.entity_id, AuditEntry.payload_json))
        if f'"{ROW_HASH}"' in p
    }
    found = []
    for table in REGULATED:
        _, key = _primary_key(table)
        found += [(table, i) for i in connection.execute(select(key)).scalars() if (table, str(i)) not in sealed]
    return found


def adopt_unsealed(engine: Engine, actor: str) -> int:
    """Seal every regulated row that has no entry yet (a store from before seals); returns how many.

    An explicit, audited act by a named person: it also accepts rows written behind the program's
    back, so run `chiptwin audit verify` first and read what it names.
    """

    def work(connection: Connection) -> str:
        rows = _unsealed(connection)
        for table, row_id in rows:
            seal_row(connection, table, row_id, actor, "audit.adopt")
        return str(len(rows))

    return int(_with_retry(engine, work))


# ------------------------------------------------------------------ verification


@dataclass(frozen=True)
class BrokenLink:
    seq: int
    t_utc_s: float
    actor: str
    action: str
    reason: str


@dataclass(frozen=True)
class Problem:
    """One thing verification found, in one sentence a person can act on."""

    kind: str  # truncated, rewritten, anchor, row-edited, row-unsealed, row-gone
    message: str


@dataclass(frozen=True)
class AuditReport:
    entries_checked: int  # the intact prefix of the chain
    last_hash: str
    first_broken: BrokenLink | None
    problems: tuple[Problem, ...] = ()
    anchored_seq: int | None = None
    rows_checked: int = 0

    @property
    def intact(self) -> bool:
        return self.first_broken is None and not self.problems


@dataclass
class _Walk:
    """What one pass over the chain collects."""

    checked: int = 0
    last_hash: str = GENESIS_HASH
    head_seq: int = 0
    first_broken: BrokenLink | None = None
    seals: dict[tuple[str, str], tuple[int, str | None]] = field(default_factory=dict)
    rewritten: list[tuple[int, Anchor]] = field(default_factory=list)


def verify_audit(engine: Engine) -> AuditReport:
    """The chain from the start, the head against its anchors, every regulated row against its seal."""
    path = anchor_path(engine.url)
    anchors, problems = _anchors(path) if path.exists() else ([], [])
    with read_snapshot(engine) as connection:
        walk = _walk_chain(connection, {a.seq: a for a in anchors})
        row_problems, rows = _row_problems(connection, walk.seals)
    problems += _anchor_problems(walk, anchors)
    if walk.head_seq and not path.exists():
        problems.append(
            Problem(
                "anchor",
                f"there is no anchor file {path}: the trail's head is not anchored, so "
                "a deleted tail would go unnoticed; set $CHIPTWIN_AUDIT_ANCHOR_DIR to "
                "where the anchors are, or start anchoring with `chiptwin audit anchor`",
            )
        )
    anchored = max((a.seq for a in anchors), default=None)
    return AuditReport(walk.checked, walk.last_hash, walk.first_broken, tuple(problems + row_problems), anchored, rows)


@contextmanager
def read_snapshot(engine: Engine) -> Iterator[Connection]:
    """One read snapshot for the chain and the rows: a row and its seal committed while verification
    runs are either both seen or neither (else the row would look unsealed)."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN")  # in WAL mode, a read transaction is a snapshot
        else:
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        yield connection


def _walk_chain(connection: Connection, expected: dict[int, Anchor]) -> _Walk:
    walk, expected_seq, prev_hash = _Walk(), 1, GENESIS_HASH
    # Streamed (server-side cursor on PostgreSQL): a long trail never sits in memory.
    rows = connection.execution_options(yield_per=5000).execute(select(AuditEntry).order_by(AuditEntry.seq))
    with rows:
        for row in rows:
            reason = _link_problem(row, expected_seq, prev_hash)
            if reason and walk.first_broken is None:
                walk.first_broken = BrokenLink(row.seq, row.t_utc_s, row.actor, row.action, reason)
            if walk.first_broken is None:
                walk.checked, walk.last_hash = walk.checked + 1, row.entry_hash
            anchor = expected.get(row.seq)
            if anchor is not None and anchor.entry_hash != row.entry_hash:
                walk.rewritten.append((row.seq, anchor))
            _note_seal(walk, row)
            expected_seq, prev_hash, walk.head_seq = row.seq + 1, row.entry_hash, row.seq
    return walk


def _link_problem(row: Any, expected_seq: int, prev_hash: str) -> str:
    if row.seq != expected_seq:
        return f"entries {expected_seq}–{row.seq - 1} are missing (deleted)"
    if row.prev_hash != prev_hash:
        return "it does not point at the entry before it (an entry before was replaced or removed)"
    recomputed = entry_hash(
        row.seq, row.t_utc_s, row.actor, row.action, row.entity, row.entity_id, row.payload_json, row.prev_hash
    )
    if recomputed != row.entry_hash:
        return "its content does not match its hash (edited after it was written)"
    return ""


def _note_seal(walk: _Walk, row: Any) -> None:
    if row.entity not in REGULATED or f'"{ROW_HASH}"' not in row.payload_json:
        return
    try:
        sealed = json.loads(row.payload_json).get(ROW_HASH)
    except (json.JSONDecodeError, AttributeError):
        return  # an unreadable payload is the chain's problem, reported there
    walk.seals[(row.entity, row.entity_id)] = (row.seq, sealed)


def _anchors(path: Path) -> tuple[list[Anchor], list[Problem]]:
    """The anchors whose HMAC holds, and a problem for each that does not (or cannot be checked)."""
    anchors, unreadable = read_anchors(path)
    problems = [Problem("anchor", f"line {n} of the anchor file {path} cannot be read (edited)") for n in unreadable]
    key = read_key(key_path())
    if key is None:
        problems.append(
            Problem(
                "anchor",
                f"the audit key {key_path()} is missing, so the anchors in {path} cannot "
                "be checked; set $CHIPTWIN_AUDIT_KEY_FILE to the key that wrote them",
            )
        )
        return [], problems
    good = [a for a in anchors if a.holds(key)]
    for bad in (a for a in anchors if not a.holds(key)):
        problems.append(
            Problem(
                "anchor",
                f"anchor line {bad.line} (entry {bad.seq}) of {path} fails its HMAC: "
                "it was forged or edited, or written under another audit key",
            )
        )
    return good, problems


def _anchor_problems(walk: _Walk, anchors: list[Anchor]) -> list[Problem]:
    if not anchors:
        return []
    newest = max(anchors, key=lambda a: a.seq)
    problems = []
    if walk.head_seq == 0:
        problems.append(
            Problem(
                "truncated",
                f"the audit table is empty, but entries up to {newest.seq} were "
                f"anchored (last at {newest.wall}): the whole trail was deleted",
            )
        )
    elif walk.head_seq < newest.seq:
        gone = (
            f"entry {newest.seq} was"
            if newest.seq == walk.head_seq + 1
            else f"entries {walk.head_seq + 1}–{newest.seq} were"
        )
        problems.append(
            Problem(
                "truncated",
                f"the audit table ends at entry {walk.head_seq}, but entry "
                f"{newest.seq} was anchored at {newest.wall}: {gone} deleted",
            )
        )
    if walk.rewritten:
        seq, anchor = walk.rewritten[0]
        problems.append(
            Problem(
                "rewritten",
                f"entry {seq} no longer has the hash anchored at {anchor.wall} "
                f"({len(walk.rewritten)} anchored entries differ): the trail was "
                "rewritten and its chain recomputed",
            )
        )
    return problems


def _row_problems(
    connection: Connection, seals: dict[tuple[str, str], tuple[int, str | None]]
) -> tuple[list[Problem], int]:
    remaining, problems, checked = dict(seals), [], 0
    for table, model in REGULATED.items():
        for row in connection.execute(select(model.__table__)).mappings():
            key = (table, str(row[next(iter(model.__table__.primary_key.columns)).name]))
            problem = _row_problem(key, row_sha256(table, row), remaining.pop(key, None))
            if problem:
                problems.append(problem)
            checked += 1
    problems += [
        Problem(
            "row-gone",
            f"{table} {row_id} is gone, but entry {seq} recorded it: the row was deleted behind the program's back",
        )
        for (table, row_id), (seq, sealed) in remaining.items()
        if sealed is not None
    ]
    return problems, checked


def _row_problem(key: tuple[str, str], actual: str, seal: tuple[int, str | None] | None) -> Problem | None:
    table, row_id = key
    if seal is None:
        if key in SEEDED:
            if actual == row_sha256(table, SEEDED[key]):
                return None
            return Problem(
                "row-edited",
                f"{table} {row_id} differs from what the first migration seeded, and no "
                "entry records a change: it was edited behind the program's back",
            )
        return Problem("row-unsealed", f"{table} {row_id} has no audit entry: it was written behind the program's back")
    seq, sealed = seal
    if sealed is None:
        return Problem("row-edited", f"{table} {row_id} was recorded deleted (entry {seq}) but is present")
    if sealed != actual:
        return Problem("row-edited", f"{table} {row_id} was edited after entry {seq} recorded it")
    return None
