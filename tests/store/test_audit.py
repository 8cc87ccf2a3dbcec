"""The audit trail: appended concurrently without forks, tamper-evident, refused edits."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from store.audit import audit, verify_audit


def _fill(engine, n=6):
    for i in range(n):
        audit(engine, "alice", "approve", entity="proposal", entity_id=i, payload={"dose_um": 10 * i}, t_utc_s=1e9 + i)


def _drop_guard(engine):
    """What a tamperer with administrator rights would do first."""
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(text("DROP TRIGGER auditentry_no_update"))
            connection.execute(text("DROP TRIGGER auditentry_no_delete"))
        else:
            connection.execute(text("DROP TRIGGER auditentry_append_only ON auditentry"))


def test_an_untouched_chain_verifies(engine):
    _fill(engine)
    report = verify_audit(engine)
    assert report.intact and report.entries_checked == 6


def test_the_database_refuses_to_edit_or_delete_entries(engine):
    _fill(engine, 2)
    for statement in ("UPDATE auditentry SET actor = 'mallory'", "DELETE FROM auditentry"):
        with pytest.raises(DBAPIError, match="append-only"):
            with engine.begin() as connection:
                connection.execute(text(statement))
    assert verify_audit(engine).entries_checked == 2


def test_an_edited_row_is_the_first_broken_link(engine):
    _fill(engine)
    _drop_guard(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE auditentry SET payload_json = '{\"dose_um\": 500}' WHERE seq = 4"))
    report = verify_audit(engine)
    assert report.first_broken.seq == 4 and "edited" in report.first_broken.reason
    assert report.entries_checked == 3


def test_a_deleted_row_is_detected(engine):
    _fill(engine)
    _drop_guard(engine)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM auditentry WHERE seq = 2"))
    assert verify_audit(engine).first_broken.seq == 3


def test_concurrent_writers_never_fork_the_chain(engine):
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda i: audit(engine, f"runner-{i % 4}", "reading-batch", payload={"i": i}), range(40)))
    report = verify_audit(engine)
    assert report.intact and report.entries_checked == 40


def test_cli_audit_verify_reports_the_edited_entry(engine, store_url):
    _fill(engine)
    command = [sys.executable, "-m", "ui.cli", "audit", "verify", "--db", store_url]
    ok = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "intact: 6 entries" in ok.stdout
    _drop_guard(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE auditentry SET actor = 'mallory' WHERE seq = 5"))
    broken = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert broken.returncode == 1
    assert "BROKEN at entry 5" in broken.stderr and "edited after it was written" in broken.stderr
    assert "Traceback" not in broken.stderr
