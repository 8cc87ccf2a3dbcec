"""The audit trail: appended concurrently without forks, tamper-evident, refused edits; its head
anchored outside the database (truncation, rewrite); regulated rows sealed (edits, rows behind the
program's back, removed rows). On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import DBAPIError

from store.audit import append_audit, audit, entry_hash, seal_row, verify_audit
from store.audit_anchor import ANCHOR_DIR_ENV, KEY_FILE_ENV, anchor_path
from store.schema import Approval, AuditEntry, Command, DoseEvent, Proposal, User


@pytest.fixture(autouse=True)
def audit_key_and_anchors(tmp_path, monkeypatch):
    """Each test's key and anchors in its own folder (subprocesses inherit the variables)."""
    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "keys" / "audit.key"))
    monkeypatch.setenv(ANCHOR_DIR_ENV, str(tmp_path / "anchors"))


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
    command = [sys.executable, "-m", "ui.cli.app", "audit", "verify", "--db", store_url]
    ok = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "intact: 6 entries" in ok.stdout
    _drop_guard(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE auditentry SET actor = 'mallory' WHERE seq = 5"))
    broken = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert broken.returncode == 1
    assert "BROKEN at entry 5" in broken.stderr and "edited after it was written" in broken.stderr
    assert "Traceback" not in broken.stderr


# ------------------------------------------------------------------ the anchored head


def _delete(engine, where: str) -> None:
    _drop_guard(engine)
    with engine.begin() as connection:
        connection.execute(text(f"DELETE FROM auditentry {where}"))


def _kinds(report) -> list[str]:
    return [p.kind for p in report.problems]


def test_a_fresh_store_and_a_filled_one_verify_with_their_head_anchored(engine):
    assert verify_audit(engine).intact  # the seeded roles hold without entries of their own
    _fill(engine)
    report = verify_audit(engine)
    assert report.intact and report.anchored_seq == 6 and report.rows_checked == 3


@pytest.mark.parametrize(
    "where, gone",
    [
        ("WHERE seq = 6", "entry 6 was deleted"),
        ("WHERE seq > 3", "entries 4–6 were deleted"),
        ("", "the whole trail was deleted"),
    ],
)
def test_a_deleted_tail_is_truncation(engine, where, gone):
    _fill(engine)
    _delete(engine, where)
    report = verify_audit(engine)
    assert report.first_broken is None  # what is left of the chain holds: only the anchor can tell
    assert _kinds(report) == ["truncated"] and gone in report.problems[0].message


def _recompute_from(engine, seq: int, payload: dict) -> None:
    """An administrator's rewrite: edit entry ``seq`` and recompute every hash after it (no key)."""
    _drop_guard(engine)
    with engine.begin() as connection:
        rows = connection.execute(select(AuditEntry).order_by(AuditEntry.seq)).all()
        prev = rows[seq - 2].entry_hash if seq > 1 else "0" * 64
        for row in rows[seq - 1 :]:
            body = json.dumps(payload, sort_keys=True) if row.seq == seq else row.payload_json
            digest = entry_hash(row.seq, row.t_utc_s, row.actor, row.action, row.entity, row.entity_id, body, prev)
            connection.execute(
                AuditEntry.__table__.update()
                .where(AuditEntry.seq == row.seq)
                .values(payload_json=body, prev_hash=prev, entry_hash=digest)
            )
            prev = digest


def test_a_rewritten_and_recomputed_chain_is_caught_by_its_anchors(engine):
    _fill(engine)
    _recompute_from(engine, 3, {"dose_um": 500})
    report = verify_audit(engine)
    assert report.first_broken is None  # the chain alone looks fine
    assert _kinds(report) == ["rewritten"]
    assert "entry 3 no longer has the hash anchored" in report.problems[0].message


def test_a_forged_anchor_line_fails_its_hmac(engine):
    _fill(engine)
    path = anchor_path(engine.url)
    lines = path.read_text().splitlines(keepends=True)
    seq, digest, mac, wall = lines[-1].rstrip("\n").split("\t")
    lines[-1] = "\t".join([seq, digest, mac, wall.replace(":", "-", 1)]) + "\n"  # any change, without the key
    path.write_text("".join(lines))
    report = verify_audit(engine)
    assert _kinds(report) == ["anchor"] and "fails its HMAC" in report.problems[0].message


def test_a_rolled_back_append_never_anchors_ahead_of_the_table(engine):
    _fill(engine, 2)
    with pytest.raises(RuntimeError):
        with engine.begin() as connection:
            append_audit(connection, "alice", "approve")
            raise RuntimeError("the work it recorded failed")
    audit(engine, "alice", "after")
    report = verify_audit(engine)
    assert report.intact and report.anchored_seq == 3


def test_a_truncated_trail_is_never_anchored_again(engine):
    _fill(engine)
    _delete(engine, "WHERE seq > 4")
    audit(engine, "mallory", "cover-up")  # a new entry 5, unlike the anchored one: its checkpoint is refused
    report = verify_audit(engine)
    assert _kinds(report) == ["truncated", "rewritten"] and report.anchored_seq == 6


def test_cli_audit_verify_names_each_problem_on_its_own_line(engine, store_url):
    _fill(engine)
    _delete(engine, "WHERE seq > 3")
    with engine.begin() as connection:
        connection.execute(text("UPDATE role SET can_approve = true WHERE name = 'technician'"))
    command = [sys.executable, "-m", "ui.cli.app", "audit", "verify", "--db", store_url]
    broken = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert broken.returncode == 1 and "Traceback" not in broken.stderr
    lines = broken.stderr.strip().splitlines()
    assert len(lines) == 2
    assert "(truncated)" in lines[0] and "entries 4–6 were deleted" in lines[0]
    assert "(row-edited)" in lines[1] and "role technician" in lines[1]


# ------------------------------------------------------------------ regulated rows


@pytest.fixture
def regulated(engine, channels):
    """One sealed row of each regulated table, written as the program writes them."""
    with engine.begin() as c:
        chip_id = c.execute(text("SELECT id FROM chip")).scalar()
        proposal = c.execute(insert(Proposal).values(design_json="{}", created_utc_s=1.0)).inserted_primary_key[0]
        ids = {
            "approval": c.execute(
                insert(Approval).values(
                    proposal_id=proposal, decided_by="sam", decision="rejected", reason="too high", decided_utc_s=2.0
                )
            ).inserted_primary_key[0],
            "command": c.execute(
                insert(Command).values(
                    idempotency_key="run1/step1/liver-1/a1",
                    command="dispense",
                    state="pending",
                    requested_amount=10.0,
                    amount_unit="uL",
                    created_utc_s=3.0,
                    updated_utc_s=3.0,
                )
            ).inserted_primary_key[0],
            "user": c.execute(
                insert(User).values(
                    username="tina", role_name="technician", created_utc_s=4.0, password_hash="scrypt$1$1$1$00$00"
                )
            ).inserted_primary_key[0],
        }
        ids["doseevent"] = c.execute(
            insert(DoseEvent).values(
                chip_id=chip_id, command_id=ids["command"], drug="apap", t_utc_s=3.0, amount_nmol=0.5, volume_ml=0.01
            )
        ).inserted_primary_key[0]
        for table, row_id in ids.items():
            seal_row(c, table, row_id, "test", f"{table}.add")
        c.execute(
            text("UPDATE command SET state = 'confirmed', device_reported_amount = 10.0 WHERE id = :i"),
            {"i": ids["command"]},
        )
        seal_row(c, "command", ids["command"], "runner", "dose.confirmed", {"device_reported_ul": 10.0})
    ids["role"] = "technician"
    assert verify_audit(engine).intact
    return ids


EDITS = {  # what an administrator with SQL access might change behind the program's back
    "approval": "UPDATE approval SET decision = 'approved' WHERE id = :i",
    "doseevent": "UPDATE doseevent SET amount_nmol = 5.0 WHERE id = :i",
    "command": "UPDATE command SET device_reported_amount = 1.0 WHERE id = :i",
    "user": "UPDATE \"user\" SET role_name = 'admin' WHERE id = :i",
    "role": "UPDATE role SET can_approve = true WHERE name = :i",
}


@pytest.mark.parametrize("table", list(EDITS))
def test_an_edit_of_a_regulated_row_is_named(engine, regulated, table):
    with engine.begin() as connection:
        connection.execute(text(EDITS[table]), {"i": regulated[table]})
    report = verify_audit(engine)
    assert _kinds(report) == ["row-edited"]
    assert report.problems[0].message.startswith(f"{table} {regulated[table]} ")


def test_a_row_inserted_behind_the_programs_back_is_named(engine, regulated):
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO role (name, can_control, can_approve, can_administer, description) "
                "VALUES ('root', true, true, true, '')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO doseevent (chip_id, drug, t_utc_s, amount_nmol, volume_ml) "
                "SELECT chip_id, drug, 9.0, 50.0, 0.1 FROM doseevent"
            )
        )
    report = verify_audit(engine)
    assert _kinds(report) == ["row-unsealed", "row-unsealed"]
    named = " ".join(p.message for p in report.problems)
    assert "doseevent 2 has no audit entry" in named and "role root has no audit entry" in named


def test_a_removed_regulated_row_is_named(engine, regulated):
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM approval WHERE id = :i"), {"i": regulated["approval"]})
    report = verify_audit(engine)
    assert _kinds(report) == ["row-gone"] and report.problems[0].message.startswith("approval 1 is gone")


def test_a_change_made_through_the_program_is_sealed_again(engine, regulated):
    with engine.begin() as connection:
        connection.execute(text(EDITS["user"]), {"i": regulated["user"]})
        seal_row(connection, "user", regulated["user"], "ada", "user.role", {"role_name": "admin"})
    assert verify_audit(engine).intact
