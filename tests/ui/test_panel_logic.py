"""The panel's logic without Streamlit: refusals, audited writes, tables, exports, twin tools."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from sqlalchemy import select

from store.audit import verify_audit
from store.schema import Approval, AuditEntry, PanelRequest
from tests.ui.test_panel_support import PASSWORDS, T0, fit_record, lab  # noqa: F401 (lab is a fixture)
from ui.panel import decisions, live, records, review, twin_tools
from ui.panel import lab as lab_logic
from ui.panel.auth import sign_in
from ui.panel.context import engine_for
from ui.panel.errors import NotAllowed, PanelError


@pytest.fixture
def db(lab):
    return engine_for(lab.url)


def _who(db, name):
    return sign_in(db, name, PASSWORDS[name])


def test_the_server_refuses_a_technician_even_without_the_page(db, lab):
    with pytest.raises(NotAllowed, match="technician"):
        decisions.decide(db, _who(db, "tina"), lab.proposal_id, "approve", "because", PASSWORDS["tina"])
    with pytest.raises(NotAllowed, match="sign in first"):
        live.request_control(db, None, lab.run_id, "pause")


def test_a_decision_is_made_once(db, lab):
    sam = _who(db, "sam")
    with pytest.raises(PanelError, match="give a reason"):
        decisions.decide(db, sam, lab.proposal_id, "reject", "  ", PASSWORDS["sam"])
    done = decisions.decide(db, sam, lab.proposal_id, "reject", "dose too high", PASSWORDS["sam"])
    assert done.decision == "rejected"
    with pytest.raises(PanelError, match="rejected already"):
        decisions.decide(db, _who(db, "ada"), lab.proposal_id, "approve", "overrule", PASSWORDS["ada"])
    with db.connect() as connection:
        assert len(connection.execute(select(Approval)).all()) == 1
        assert [r.kind for r in connection.execute(select(PanelRequest)).all()] == ["reject"]
    assert verify_audit(db).intact


def test_the_signature_covers_what_was_signed():
    one = decisions.signature_of(1, '{"dose": 1}', "approved", "ok", "sam", T0)
    assert one != decisions.signature_of(1, '{"dose": 2}', "approved", "ok", "sam", T0)
    assert one != decisions.signature_of(1, '{"dose": 1}', "approved", "ok", "ada", T0)


def test_an_alarm_is_acknowledged_once(db, lab):
    tina = _who(db, "tina")
    lab_logic.acknowledge_alarm(db, tina, lab.alarm_id, "checked")
    with pytest.raises(PanelError, match="not open"):
        lab_logic.acknowledge_alarm(db, tina, lab.alarm_id, "again")
    assert lab_logic.open_alarms(db).empty


def test_control_requests_refuse_unknown_kinds_and_runs(db, lab):
    tina = _who(db, "tina")
    with pytest.raises(PanelError, match="unknown request"):
        live.request_control(db, tina, lab.run_id, "explode")
    with pytest.raises(PanelError, match="no run 99"):
        live.request_control(db, tina, 99, "pause")
    first = live.request_control(db, tina, lab.run_id, "pause")
    second = live.request_control(db, tina, lab.run_id, "resume")  # never dropped, whatever the run's state
    table = live.requests_of(db, lab.run_id)
    assert list(table["id"]) == [second, first] and set(table["state"]) == {"pending"}


def test_chip_windows_are_downsampled_and_carry_the_marks(db, lab):
    windows = live.chip_windows(db, lab.chip_ids[0], T0, T0 + 7200, max_points=100)
    assert [c.name for c in windows.channels] == ["liver-1/oxygen", "liver-1/pressure", "liver-1/teer"]
    assert all(len(c.frame) <= 100 and c.frame["n"].sum() == 720 for c in windows.channels)
    assert list(windows.marks["kind"]) == ["dose", "sample"]
    assert live.latest_time(db, lab.rig_id) == T0 + 7190


def test_parameter_table_keeps_missing_intervals_visible():
    record = fit_record(2.0, 0.3)
    record["theta"]["km"].update(se=None, ci95=None, rse_percent=None)
    table = review.parameter_table(record)
    km = table[table["parameter"] == "km"].iloc[0]
    assert km["interval"].startswith("none") and pd.isna(km["ci95 low"])


def test_learning_frame_orders_the_fits_of_a_run(db, lab):
    frame = review.learning_frame(db, lab.run_id, "liver_chip")
    vmax = frame[frame["parameter"] == "vmax"]
    assert list(vmax["fit"]) == [1, 2] and list(vmax["estimate"]) == [2.0, 1.6]


def test_exports_round_trip_and_are_audited(db, lab):
    ada = _who(db, "ada")
    ids = lab.channel_ids[:2]
    csv = pd.read_csv(io.BytesIO(records.export_readings(db, ada, ids, T0, T0 + 600, "csv")))
    parquet = pd.read_parquet(io.BytesIO(records.export_readings(db, ada, ids, T0, T0 + 600, "parquet")))
    assert len(csv) == len(parquet) == 120 and list(parquet["t_utc_s"]) == list(csv["t_utc_s"])
    assert set(parquet["chip"]) == {"liver-1"}
    with db.connect() as connection:
        exports = connection.execute(select(AuditEntry.payload_json).where(AuditEntry.action == "data.export")).all()
    assert [json.loads(e[0])["format"] for e in exports] == ["csv", "parquet"]
    assert records.count_readings(db, ids, T0, T0 + 600) == 120


def test_audit_filters(db, lab):
    _who(db, "sam")
    trail = records.audit_trail(db, records.AuditFilter(action_contains="sign_in"))
    assert list(trail["actor"]) == ["sam"]
    assert records.audit_trail(db, records.AuditFilter(since_utc_s=4e9)).empty
    report = records.verify(db, _who(db, "ada"))
    assert report.intact and report.entries_checked >= 5


def test_body_on_chip_with_gut_has_teer_and_lumen():
    run = twin_tools.simulate_body_on_chip(("gut", "liver"), {}, 0.4, 10.0, "apical", 24.0, n_points=25)
    assert "gut lumen (apical)" in set(run.concentrations["series"]) and not run.teer.empty
    assert run.final["liver viability (%)"] <= 100.0


def test_population_distribution_adds_up_to_one():
    summary = twin_tools.simulate_population("metoprolol", "100 mg q12h x14 oral", 500, target="2:4")
    assert twin_tools.distribution(summary, "auc_tau_ss")["fraction"].sum() == pytest.approx(1.0)
    assert 0.0 <= summary.pta <= 1.0
