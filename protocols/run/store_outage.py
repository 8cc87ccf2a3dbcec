"""Riding out a lost store: a PostgreSQL restart or a network blip under a running protocol.

A transaction that dies with its connection is not retried statement by statement: the
step it belongs to is re-entered from the run's checkpoint once the store answers again,
exactly as ``resume`` does after a crash — every step is re-entrant by key (dose intents
and their DoseEvent commit together and are found again by idempotency key; samples by
label; readings are idempotent on (channel, time)), so a write that did or did not commit
before the loss is neither lost nor doubled. Unfinished dose intents are reconciled
against the pumps before the step goes on.

A store still unreachable after ``outage_limit_s()`` (``CHIPTWIN_STORE_OUTAGE_S``, 60 s by
default) ends the process: the rig is put in its safe state, an alarm is recorded if the
store takes it, and ``StoreLost`` tells the person to ``chiptwin resume`` the run.
"""

from __future__ import annotations

import os
import time

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from protocols.errors import ProtocolError

OUTAGE_LIMIT_ENV = "CHIPTWIN_STORE_OUTAGE_S"
DEFAULT_OUTAGE_LIMIT_S = 60.0
PROBE_WALL_S = 0.5
MAX_RECOVERIES = 50  # per process: a store that keeps dropping for ever ends the run (bounded)


class StoreLost(ProtocolError):
    """The store stayed unreachable past the limit; the rig is in its safe state; resume the run."""


def outage_limit_s() -> float:
    raw = os.environ.get(OUTAGE_LIMIT_ENV, "").strip()
    try:
        value = float(raw) if raw else DEFAULT_OUTAGE_LIMIT_S
    except ValueError:
        value = DEFAULT_OUTAGE_LIMIT_S
    return value if 0.0 <= value < 86400.0 else DEFAULT_OUTAGE_LIMIT_S


def is_store_outage(exc: BaseException) -> bool:
    """A lost or refused connection (psycopg's OperationalError, a connection SQLAlchemy
    invalidated). An IntegrityError is a bug, never an outage: it is not retried."""
    if not isinstance(exc, DBAPIError) or isinstance(exc, IntegrityError):
        return False
    return bool(exc.connection_invalidated) or type(exc).__name__ in ("OperationalError", "InterfaceError")


def wait_for_store(engine: Engine, limit_s: float) -> bool:
    """True once the store answers ``SELECT 1`` (within ``limit_s`` wall seconds), else False."""
    deadline = time.monotonic() + limit_s
    while True:
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except DBAPIError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(PROBE_WALL_S, max(deadline - time.monotonic(), 0.0)))
