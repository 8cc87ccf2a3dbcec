"""Users who may sign in: scrypt hashes, `chiptwin user add`, and the 0002 migration on both backends."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text
from typer.testing import CliRunner

from store import make_engine
from store.audit import verify_audit
from store.migrate import _config, database_revision, upgrade
from ui.cli.app import app
from ui.panel.auth import add_user, check_password, hash_password, sign_in
from ui.panel.errors import PanelError

runner = CliRunner()


@pytest.fixture
def empty_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    engine = make_engine(url, create=True)
    upgrade(engine)
    yield url, engine
    engine.dispose()


def test_a_hash_is_salted_and_checks_only_its_own_password():
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second and first.startswith("scrypt$16384$8$1$")
    assert check_password("correct horse", first) and check_password("correct horse", second)
    assert not check_password("correct hors", first)
    assert not check_password("anything", None) and not check_password("anything", "md5$abc")


def test_user_add_reads_the_password_from_stdin_and_the_user_can_sign_in(empty_store):
    url, engine = empty_store
    result = runner.invoke(
        app, ["user", "add", "ana", "--role", "scientist", "--password-stdin", "--db", url], input="s3cret-pass\n"
    )
    assert result.exit_code == 0, result.output
    with engine.connect() as connection:
        stored = connection.execute(text('SELECT role_name, password_hash FROM "user"')).one()
    assert stored[0] == "scientist" and "s3cret-pass" not in stored[1]
    assert sign_in(engine, "ana", "s3cret-pass").can_approve
    assert sign_in(engine, "ana", "wrong") is None
    with engine.connect() as connection:
        actions = [r[0] for r in connection.execute(text("SELECT action FROM auditentry ORDER BY seq"))]
    assert actions == ["user.add", "panel.sign_in", "panel.sign_in_refused"]
    assert verify_audit(engine).intact
    listed = runner.invoke(app, ["user", "list", "--db", url])
    assert "ana" in listed.output and "can sign in" in listed.output


def test_user_add_prompts_twice_when_no_stdin_flag(empty_store):
    url, engine = empty_store
    result = runner.invoke(app, ["user", "add", "tom", "--db", url], input="long-enough\nlong-enough\n")
    assert result.exit_code == 0, result.output
    assert sign_in(engine, "tom", "long-enough").role == "technician"


@pytest.mark.parametrize(
    "args, stdin, message",
    [
        (["--role", "wizard"], "long-enough\n", "unknown role 'wizard'"),
        (["--role", "scientist"], "short\n", "too short"),
    ],
)
def test_user_add_refusals_are_one_line(empty_store, args, stdin, message):
    url, _ = empty_store
    result = runner.invoke(app, ["user", "add", "bob", *args, "--password-stdin", "--db", url], input=stdin)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_a_taken_username_is_refused(empty_store):
    _, engine = empty_store
    add_user(engine, "ana", "scientist", "first-password")
    with pytest.raises(PanelError, match="exists already"):
        add_user(engine, "ana", "admin", "other-password")


def test_passwd_changes_the_password(empty_store):
    url, engine = empty_store
    add_user(engine, "ana", "scientist", "first-password")
    result = runner.invoke(app, ["user", "passwd", "ana", "--password-stdin", "--db", url], input="second-password\n")
    assert result.exit_code == 0, result.output
    assert sign_in(engine, "ana", "first-password") is None and sign_in(engine, "ana", "second-password")


def test_migration_0002_adds_the_hash_column_and_keeps_users(store_url):
    """From 0001 with a user already stored, on SQLite and on PostgreSQL."""
    engine = make_engine(store_url, create=True)
    try:
        upgrade(engine, "0001")
        with engine.begin() as connection:
            connection.execute(
                text(
                    'INSERT INTO "user" (username, display_name, role_name, created_utc_s, active) '
                    "VALUES ('old', 'Old Timer', 'technician', 1.0, true)"
                )
            )
        assert "password_hash" not in {c["name"] for c in inspect(engine).get_columns("user")}
        assert upgrade(engine, "0002") == ("0001", "0002")  # later revisions have tests of their own
        assert database_revision(engine) == "0002"
        columns = {c["name"]: c for c in inspect(engine).get_columns("user")}
        assert columns["password_hash"]["nullable"]
        with engine.connect() as connection:
            row = connection.execute(text('SELECT username, password_hash FROM "user"')).one()
        assert tuple(row) == ("old", None)
        assert sign_in(engine, "old", "") is None  # no password yet: cannot sign in
        command.downgrade(_config(engine), "0001")  # and back down, the user kept
        assert "password_hash" not in {c["name"] for c in inspect(engine).get_columns("user")}
        with engine.connect() as connection:
            assert connection.execute(text('SELECT username FROM "user"')).scalar() == "old"
    finally:
        engine.dispose()
