"""Schema versions: created from empty on both backends; a newer database is refused, data kept."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import inspect, text
from sqlmodel import SQLModel, select

import store.schema  # noqa: F401
from store import make_engine, open_store
from store.engine import session
from store.errors import SchemaVersionError
from store.migrate import code_head, database_revision, upgrade
from store.schema import Rig


def test_upgrade_creates_every_table_of_the_schema(engine):
    tables = set(inspect(engine).get_table_names())
    assert set(SQLModel.metadata.tables) <= tables
    assert database_revision(engine) == code_head()
    with engine.connect() as connection:
        roles = dict(connection.execute(text("SELECT name, can_approve FROM role")).all())
    assert {name: bool(v) for name, v in roles.items()} == {"technician": False, "scientist": True, "admin": True}


def test_upgrade_twice_changes_nothing(engine):
    assert upgrade(engine) == (code_head(), code_head())


def test_a_database_newer_than_the_code_is_refused_and_its_data_kept(engine, store_url):
    with session(engine) as s:
        s.add(Rig(name="kept", created_utc_s=1.0))
        s.commit()
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    for attempt in (lambda: open_store(store_url), lambda: upgrade(engine)):
        with pytest.raises(SchemaVersionError) as caught:
            attempt()
        assert "newer than this ChipTwin" in str(caught.value) and "pip install -U chiptwin" in str(caught.value)
    with session(engine) as s:
        assert [r.name for r in s.exec(select(Rig)).all()] == ["kept"]


def test_cli_db_upgrade_creates_the_schema_from_empty(store_url):
    result = subprocess.run(
        [sys.executable, "-m", "ui.cli.app", "db", "upgrade", "--db", store_url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"schema empty → {code_head()}" in result.stdout
    engine = make_engine(store_url)
    assert database_revision(engine) == code_head()
    engine.dispose()
