"""The lab record: SQLite by default, PostgreSQL for a shared lab; same schema, chosen by URL.

engine = open_store("postgresql+psycopg://lab@db/chiptwin")   # or None: $CHIPTWIN_DB / ./chiptwin.db
"""

from __future__ import annotations

from sqlalchemy import Engine

from store.engine import make_engine, resolve_url
from store.errors import StoreError
from store.migrate import check_schema


def open_store(url: str | None = None) -> Engine:
    """Connect, and refuse a database whose schema is not this code's (the message says what to do)."""
    engine = make_engine(url)
    try:
        check_schema(engine)
    except StoreError:
        engine.dispose()
        raise
    return engine


__all__ = ["open_store", "make_engine", "resolve_url", "StoreError"]
