"""Audited writes: the change and its audit entry commit together, or not at all."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

T = TypeVar("T")
_ATTEMPTS = 20


def audited(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run ``work`` in one transaction, retrying when a concurrent writer took the next audit seq.

    ``work`` must call ``store.audit.append_audit`` itself; a PanelError it raises is not retried.
    """
    for attempt in range(_ATTEMPTS):
        try:
            with engine.begin() as connection:
                return work(connection)
        except (IntegrityError, OperationalError):
            if attempt == _ATTEMPTS - 1:
                raise
            time.sleep(min(0.001 * 2**attempt, 0.2))
    raise AssertionError("unreachable")
