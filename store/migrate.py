"""Schema versions with Alembic: upgrade, and check that code and database agree."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine

from store.errors import SchemaVersionError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def _config(engine: Engine | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def code_head() -> str:
    """The newest schema revision this code knows."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def database_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Bring the schema to ``revision``; returns (before, after). Refuses a newer database."""
    before = database_revision(engine)
    _refuse_unknown(before)
    try:
        command.upgrade(_config(engine), revision)
    except CommandError as exc:
        raise SchemaVersionError(f"cannot upgrade the schema: {exc}") from None
    return before, database_revision(engine) or ""


def check_schema(engine: Engine) -> str:
    """Raise unless the database is exactly at this code's schema head."""
    current = database_revision(engine)
    head = code_head()
    if current == head:
        return current
    if current is None:
        raise SchemaVersionError(
            "this database has no ChipTwin schema yet; run `chiptwin db upgrade` (with the same --db)"
        )
    _refuse_unknown(current)
    raise SchemaVersionError(
        f"the database schema is at revision {current}, older than this code's {head}; "
        "run `chiptwin db upgrade` (with the same --db) — stored data is kept"
    )


def _refuse_unknown(revision: str | None) -> None:
    if revision is None:
        return
    script = ScriptDirectory.from_config(_config())
    known = {rev.revision for rev in script.walk_revisions()}
    if revision not in known:
        raise SchemaVersionError(
            f"the database schema is at revision {revision}, newer than this ChipTwin knows "
            f"(its newest is {script.get_current_head()}); install the ChipTwin version that wrote it "
            "(pip install -U chiptwin) or use another --db. Nothing was changed."
        )
