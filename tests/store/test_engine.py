"""Opening a store: URL rules, SQLite settings, and the messages for bad URLs and dead servers."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from store import make_engine, open_store, resolve_url
from store.errors import BadDatabaseURL, SchemaVersionError, StoreUnreachable


def test_default_is_a_file_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHIPTWIN_DB", raising=False)
    assert resolve_url() == f"sqlite:///{tmp_path / 'chiptwin.db'}"


def test_environment_variable_chooses_the_store(tmp_path, monkeypatch):
    monkeypatch.setenv("CHIPTWIN_DB", "postgresql://lab@db.example:5432/chiptwin")
    assert resolve_url() == "postgresql+psycopg://lab@db.example:5432/chiptwin"
    assert resolve_url(str(tmp_path / "x.db")) == f"sqlite:///{tmp_path / 'x.db'}"


def test_sqlite_is_opened_in_wal_mode_with_foreign_keys_and_a_busy_timeout(sqlite_url):
    engine = make_engine(sqlite_url, create=True)
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() >= 5000
    engine.dispose()


@pytest.mark.parametrize("url", ["postgresql+psycopg://::notaport", "mysql://root@localhost/lab", "sqlite://"])
def test_bad_urls_name_the_problem_and_the_fix(url):
    with pytest.raises(BadDatabaseURL) as caught:
        make_engine(url)
    assert "sqlite:///" in str(caught.value) and "postgresql+psycopg://" in str(caught.value)


def test_an_unreachable_server_is_one_clear_message():
    with pytest.raises(StoreUnreachable) as caught:
        make_engine("postgresql+psycopg://lab:secret@127.0.0.1:1/chiptwin")
    message = str(caught.value)
    assert "cannot reach the database" in message and "server is running" in message
    assert "secret" not in message  # never print the password


def test_a_missing_sqlite_file_is_not_silently_created(tmp_path):
    missing = tmp_path / "typo.db"
    with pytest.raises(StoreUnreachable, match="db upgrade"):
        make_engine(str(missing))
    assert not missing.exists()


def test_an_empty_database_asks_for_upgrade(store_url):
    make_engine(store_url, create=True).dispose()
    with pytest.raises(SchemaVersionError, match="chiptwin db upgrade"):
        open_store(store_url)


def test_missing_folder_is_reported(tmp_path: Path):
    with pytest.raises(StoreUnreachable, match="does not exist"):
        make_engine(str(tmp_path / "no" / "such" / "lab.db"), create=True)
