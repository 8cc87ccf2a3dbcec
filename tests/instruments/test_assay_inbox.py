"""The assay inbox with real files in a temporary folder: parse, validate, match, move,
ledger, never twice."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from instruments.drivers.assay_inbox import AssayInbox, KnownSample

HEADER = "sample_id,chip,time,analyte,value,unit,lloq\n"
KNOWN = {
    "S-001": KnownSample("S-001", "liver-A", datetime(2024, 5, 2, 14, 30, tzinfo=timezone.utc)),
    "S-002": KnownSample("S-002", "liver-A", datetime(2024, 5, 2, 16, 30, tzinfo=timezone.utc)),
    "S-003": KnownSample("S-003", "liver-B"),
}
GOOD = (
    HEADER
    + "S-001,liver-A,2024-05-02T14:30:20,midazolam,12.5,ng/mL,\n"
    + "S-002,liver-A,2024-05-02T16:30:00Z,midazolam,,ng/mL,BLQ\n"
    + "S-003,liver-B,2024-05-02T18:00:00,1-OH-midazolam,0.8,nmol/L,false\n"
)


def drop(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def inbox(tmp_path: Path) -> AssayInbox:
    return AssayInbox(tmp_path / "inbox", KNOWN, settle_s=0.0)


def test_valid_file_is_delivered_moved_to_done_and_ledgered(inbox: AssayInbox) -> None:
    drop(inbox.folder, "lcms_run7.csv", GOOD)
    delivered: list = []
    [outcome] = inbox.poll(delivered.extend)
    assert outcome.accepted and outcome.moved_to == inbox.done / "lcms_run7.csv"
    assert [(r.sample_id, r.value, r.unit, r.below_lloq, r.row) for r in delivered] == [
        ("S-001", 12.5, "ng/mL", False, 2),
        ("S-002", None, "ng/mL", True, 3),
        ("S-003", 0.8, "nmol/L", False, 4),
    ]
    assert not (inbox.folder / "lcms_run7.csv").exists()
    ledger = json.loads((inbox.folder / ".imported.json").read_text())
    assert [entry["file"] for entry in ledger.values()] == ["lcms_run7.csv"]


def test_same_content_under_another_name_is_never_imported_twice(inbox: AssayInbox) -> None:
    drop(inbox.folder, "run7.csv", GOOD)
    inbox.poll()
    drop(inbox.folder, "run7_copy.csv", GOOD)
    delivered: list = []
    [outcome] = inbox.poll(delivered.extend)
    assert not outcome.accepted and delivered == []
    reason = (inbox.rejected / "run7_copy.csv.reason.txt").read_text()
    assert "already imported as 'run7.csv'" in reason


def test_bad_rows_reject_the_whole_file_with_row_precise_reasons(inbox: AssayInbox) -> None:
    bad = (
        HEADER
        + "S-001,liver-A,2024-05-02T14:30:00,midazolam,12.5,ng/mL,\n"  # row 2 fine
        + "S-999,liver-A,2024-05-02T14:30:00,midazolam,1,ng/mL,\n"  # row 3 unknown sample
        + "S-002,liver-B,2024-05-02T16:30:00,midazolam,1,ng/mL,\n"  # row 4 wrong chip
        + "S-001,liver-A,2024-05-02T14:30:00,midazolam,1,nanogramz/mL,\n"  # row 5 unit
        + "S-001,liver-A,2024-05-02T19:30:00,other,1,ng/mL,\n"  # row 6 time mismatch
        + "S-003,liver-B,yesterday,midazolam,1,ng/mL,\n"  # row 7 time format
        + "S-003,liver-B,2024-05-02T18:00:00,midazolam,,ng/mL,no\n"  # row 8 blank value
        + "S-003,liver-B,2024-05-02T18:00:00,x,1,ng/mL,maybe\n"
    )  # row 9 flag
    drop(inbox.folder, "plate.csv", bad)
    delivered: list = []
    [outcome] = inbox.poll(delivered.extend)
    assert not outcome.accepted and delivered == []
    reason = (inbox.rejected / "plate.csv.reason.txt").read_text()
    for expected in [
        "row 3: sample id 'S-999' is not a known sample",
        "row 4: sample 'S-002' was taken from chip",
        "row 5: unit 'nanogramz/mL'",
        "row 6: sample 'S-001' was taken at",
        "row 7: time 'yesterday'",
        "row 8: value is blank",
        "row 9: lloq flag 'maybe'",
    ]:
        assert expected in reason
    assert "row 2" not in reason
    assert (inbox.rejected / "plate.csv").exists() and not (inbox.folder / ".imported.json").exists()


def test_missing_columns_and_duplicate_results_are_rejected(inbox: AssayInbox) -> None:
    drop(inbox.folder, "a.csv", "sample_id,value\nS-001,1\n")
    drop(inbox.folder, "b.csv", GOOD + "S-001,liver-A,2024-05-02T14:30:00,midazolam,13,ng/mL,\n")
    outcomes = {o.file: o for o in inbox.poll()}
    assert "row 1: missing column(s) chip, time, analyte, unit, lloq" in outcomes["a.csv"].errors[0]
    assert outcomes["b.csv"].errors == ["row 5: sample 'S-001' analyte 'midazolam' repeats row 2"]


def test_failed_delivery_leaves_the_file_for_the_next_poll(inbox: AssayInbox) -> None:
    drop(inbox.folder, "run.csv", GOOD)

    def store_down(records: list) -> None:
        raise ConnectionError("store unavailable")

    with pytest.raises(ConnectionError):
        inbox.poll(store_down)
    assert (inbox.folder / "run.csv").exists() and inbox.ledger() == {}
    [outcome] = inbox.poll(lambda records: None)
    assert outcome.accepted


def test_rejected_content_may_come_back_once_the_sample_is_known(tmp_path: Path) -> None:
    known: dict[str, KnownSample] = {}
    inbox = AssayInbox(tmp_path / "in", lambda: known, settle_s=0.0)
    text = HEADER + "S-003,liver-B,2024-05-02T18:00:00,midazolam,1,ng/mL,\n"
    drop(inbox.folder, "r.csv", text)
    assert not inbox.poll()[0].accepted
    known["S-003"] = KNOWN["S-003"]
    drop(inbox.folder, "r.csv", text)
    [outcome] = inbox.poll()
    assert outcome.accepted and (inbox.rejected / "r.csv").exists() and (inbox.done / "r.csv").exists()


def test_files_still_being_written_wait_for_the_settle_time(tmp_path: Path) -> None:
    inbox = AssayInbox(tmp_path / "in", KNOWN, settle_s=60.0)
    drop(inbox.folder, "fresh.csv", GOOD)
    assert inbox.poll() == [] and (inbox.folder / "fresh.csv").exists()
