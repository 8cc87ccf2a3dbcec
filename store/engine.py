"""Opening the store: one URL chooses SQLite (default) or PostgreSQL, same schema, same code."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlmodel import Session

from store.errors import BadDatabaseURL, StoreUnreachable

DEFAULT_DB_FILE = "chiptwin.db"
ENV_VAR = "CHIPTWIN_DB"
SQLITE_BUSY_TIMEOUT_MS = 10_000
_SUPPORTED = "use sqlite:///PATH/TO/FILE.db or postgresql+psycopg://USER@HOST:PORT/DATABASE"


def resolve_url(url: str | None = None) -> str:
    """The store URL: the argument, else $CHIPTWIN_DB, else a SQLite file in the working directory.

    A bare path (``lab.db``) means a SQLite file; ``postgresql://`` means psycopg 3.
    """
    raw = (url or os.environ.get(ENV_VAR) or DEFAULT_DB_FILE).strip()
    if "://" not in raw:
        return f"sqlite:///{Path(raw).expanduser().resolve()}"
    if raw.startswith("postgresql://") or raw.startswith("postgres://"):
        return "postgresql+psycopg://" + raw.split("://", 1)[1]
    return raw


def parse_url(url: str | None = None) -> URL:
    raw = resolve_url(url)
    try:
        parsed = make_url(raw)
    except (ArgumentError, ValueError):
        raise BadDatabaseURL(f"cannot read the database URL {raw!r}; {_SUPPORTED}") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise BadDatabaseURL(f"unsupported database {parsed.get_backend_name()!r} in {_redact(parsed)}; {_SUPPORTED}")
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise BadDatabaseURL(f"{raw!r} names no file; the lab record must persist, so {_SUPPORTED}")
    return parsed


def _redact(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _set_sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets the panel read while the runner writes; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    # FULL: a committed transaction survives a power cut. The dosing intent log depends on
    # that; readings pay one sync per batch, which is why they are batched.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def make_engine(url: str | None = None, *, create: bool = False) -> Engine:
    """An engine for the URL, checked to be reachable; raises a StoreError a user can act on.

    A SQLite file that does not exist yet is created only when ``create`` is set (by
    ``chiptwin db upgrade``), so a mistyped path never yields an empty lab record.
    """
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database).expanduser().resolve()
        if not create and not path.exists():
            raise StoreUnreachable(
                f"there is no store at {path}; create it with `chiptwin db upgrade --db {path}` or fix the path"
            )
        folder = path.parent
        if not folder.is_dir():
            raise StoreUnreachable(
                f"the folder {folder} for the SQLite file does not exist; create it or choose another --db path"
            )
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _set_sqlite_pragmas)
    else:
        try:
            engine = create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": 5})
        except NoSuchModuleError:
            raise BadDatabaseURL(f"no driver for {_redact(parsed)}; {_SUPPORTED}") from None
    _check_reachable(engine, parsed)
    return engine


def _check_reachable(engine: Engine, parsed: URL) -> None:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        engine.dispose()
        raise StoreUnreachable(
            f"cannot reach the database {_redact(parsed)}: {reason}. "
            f"Check that the server is running and the URL (--db or ${ENV_VAR}) is right."
        ) from None


def session(engine: Engine) -> Session:
    """A session whose objects stay readable after commit (the panel reads them after)."""
    return Session(engine, expire_on_commit=False)
