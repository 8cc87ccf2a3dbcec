"""Every page of the panel rendered by Streamlit's AppTest against a real SQLite lab store."""

from __future__ import annotations

import json
import time

from sqlalchemy import select

from store import make_engine
from store.audit import verify_audit
from store.schema import Alarm, Approval, AuditEntry, PanelRequest, Proposal
from tests.ui.test_panel_support import (  # noqa: F401 (lab is a fixture)
    PASSWORDS,
    T0,
    app_signed_in,
    calibrated_lab,
    chart_frames,
    charts,
    lab,
    on_page,
    texts,
)


def _rows(url: str, query):
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(query).all()
    finally:
        engine.dispose()


def _actions(url: str) -> list[str]:
    return [r.action for r in _rows(url, select(AuditEntry.action).order_by(AuditEntry.seq))]


def test_a_signed_out_visitor_sees_only_sign_in(lab):
    app = app_signed_in(None)
    assert [t.value for t in app.title] == ["ChipTwin"]
    assert [b.label for b in app.button] == ["Sign in"]
    assert not app.sidebar.children or not any(True for _ in app.sidebar.button)
    assert "Overview" not in texts(app) and not app.dataframe


def test_a_wrong_password_is_refused_and_audited(lab):
    app = app_signed_in(None)
    app.text_input(key="username").input("sam")
    app.text_input(key="password").input("not-it")
    app.button[0].click().run()
    assert "wrong password" in app.error[0].value
    assert "user" not in app.session_state
    assert _actions(lab.url)[-1] == "panel.sign_in_refused"


def test_sign_in_shows_the_overview_and_is_audited(lab):
    app = app_signed_in("sam")
    assert app.title[0].value == "Overview"
    metrics = {m.label: m.value for m in app.metric}
    assert metrics == {
        "rigs": "1",
        "chips": "2",
        "instruments not ok": "1",
        "open alarms": "1",
        "proposals waiting": "1",
    }
    instruments = app.dataframe[1].value
    assert set(instruments["state"]) == {"🟢 ok", "🔴 lost"}
    latest = app.dataframe[2].value
    assert len(latest) == 6 and latest["value"].notna().all()
    assert _actions(lab.url)[-1] == "panel.sign_in"
    assert [b.key for b in app.sidebar.button] == ["sign_out"]  # signing out is driven in the browser test


def test_acknowledging_an_alarm_needs_a_comment_and_is_audited(lab):
    app = app_signed_in("tina")
    app.button(key=f"FormSubmitter:ack_{lab.alarm_id}-Acknowledge").click().run()
    assert "comment is required" in app.error[0].value
    app.text_input(key=f"ack_comment_{lab.alarm_id}").input("re-seated the sensor cable")
    app.button(key=f"FormSubmitter:ack_{lab.alarm_id}-Acknowledge").click().run()
    assert "acknowledged" in app.success[0].value
    alarm = _rows(lab.url, select(Alarm))[0]
    assert alarm.acknowledged_by == "tina" and alarm.ack_comment == "re-seated the sensor cable"
    assert _actions(lab.url)[-1] == "alarm.acknowledge"
    assert "No open alarms." in texts(app)


def test_a_technician_cannot_approve(lab):
    app = on_page(app_signed_in("tina"), "proposals")
    assert "may look at proposals but not approve" in texts(app)
    assert not [b for b in app.button if "sign" in b.label.lower()]
    assert _rows(lab.url, select(Proposal.status))[0].status == "pending"


def test_a_scientist_approves_with_reason_and_signature(lab):
    app = on_page(app_signed_in("sam"), "proposals")
    form = f"decide_{lab.proposal_id}"
    app.text_area(key=f"reason_{lab.proposal_id}").input("most informative; dose within the safe range")
    app.text_input(key=f"signature_{lab.proposal_id}").input("wrong signature")
    app.button(key=f"FormSubmitter:{form}-Approve and sign").click().run()
    assert "signature does not match" in app.error[0].value
    assert _rows(lab.url, select(Proposal.status))[0].status == "pending"
    app.text_area(key=f"reason_{lab.proposal_id}").input("most informative; dose within the safe range")
    app.text_input(key=f"signature_{lab.proposal_id}").input(PASSWORDS["sam"])
    app.button(key=f"FormSubmitter:{form}-Approve and sign").click().run()
    assert "approved" in app.success[0].value and "No proposal waits" in texts(app)
    approval = _rows(lab.url, select(Approval))[0]
    assert (approval.decided_by, approval.decision) == ("sam", "approved")
    assert approval.signature.startswith("sha256:") and PASSWORDS["sam"] not in approval.signature
    request = _rows(lab.url, select(PanelRequest))[0]
    assert (request.kind, request.state, request.run_id) == ("approve", "pending", lab.run_id)
    assert json.loads(request.payload_json)["proposal_id"] == lab.proposal_id
    assert _actions(lab.url)[-1] == "proposal.approve"


def test_live_page_plots_every_channel_and_pause_writes_a_request(lab):
    app = on_page(app_signed_in("tina"), "live")
    plots = charts(app)
    assert len(plots) == 6  # two chips × three channels
    spec = json.loads(plots[0].proto.spec)
    assert any(layer.get("mark", {}).get("type") == "rule" for layer in spec["layer"])  # dose/sample marks
    app.button(key="pause").click().run()
    assert "pause requested" in app.success[0].value
    request = _rows(lab.url, select(PanelRequest))[0]
    assert (request.kind, request.state, request.requested_by) == ("pause", "pending", "tina")
    table = app.dataframe[0].value
    assert list(table["state"]) == ["pending"] and table["acknowledged"].isna().all()
    assert _actions(lab.url)[-1] == "run.pause_request"


def test_the_request_confirmation_stays_until_the_runner_answers(lab):
    app = on_page(app_signed_in("tina"), "live")
    app.button(key="pause").click().run()
    app.run()  # the refresh after the click (every second in a live run) keeps the confirmation
    assert "pause requested (request" in app.success[0].value
    engine = make_engine(lab.url)
    try:
        with engine.begin() as connection:  # the runner's answer
            connection.execute(
                PanelRequest.__table__.update().values(state="done", acknowledged_utc_s=T0 + 60.0, response="paused")
            )
    finally:
        engine.dispose()
    app.run()
    assert not app.success
    assert any("(pause) done: acknowledged by the runner" in c.value for c in app.caption)


def test_abort_needs_a_confirmation(lab):
    app = on_page(app_signed_in("tina"), "live")
    assert app.button(key="abort").disabled
    app.checkbox(key="abort_confirm").check().run()
    app.button(key="abort").click().run()
    assert [r.kind for r in _rows(lab.url, select(PanelRequest))] == ["abort"]


def test_model_review_shows_intervals_warnings_and_the_learning_curve(lab):
    app = on_page(app_signed_in("sam"), "review")
    assert any("poorly identified" in w.value for w in app.warning)
    table = app.dataframe[0].value
    assert list(table["parameter"]) == ["vmax", "km", "prop"]
    assert table.loc[0, "ci95 low"] < table.loc[0, "estimate"] < table.loc[0, "ci95 high"]
    plots = charts(app)
    assert len(plots) == 2  # correlation heatmap, learning curve
    assert len(chart_frames(plots[1])[0]) == 4  # 2 fits × 2 θ
    assert len(app.get("download_button")) == 4  # fit JSON, readings CSV and Parquet, study report PDF


def test_simulator_plots_every_compartment(lab):
    app = on_page(app_signed_in("sam"), "simulator")
    app.multiselect(key="sim_modules").set_value(["liver", "kidney"]).run()
    app.button(key="FormSubmitter:simulate-Simulate").click().run()
    assert not app.error, [e.value for e in app.error]
    plots = charts(app)
    assert len(plots) == 2  # concentrations, PD readouts (no gut: no TEER)
    series = set(chart_frames(plots[0])[0]["series"])
    assert series == {"reservoir", "liver channel", "liver cells", "kidney channel", "kidney cells"}


def test_predictor_shows_exposure_and_a_recommended_dose(lab):
    app = on_page(app_signed_in("sam"), "predictor")
    app.text_input(key="p_target").input("2:4")
    app.selectbox(key="p_comed").set_value("ketoconazole")
    app.button(key="FormSubmitter:predict-Predict").click().run()
    assert not app.error, [e.value for e in app.error]
    quantities = set(app.dataframe[0].value["quantity"])
    assert {"CL", "auc_tau_ss", "cmax_ss"} <= quantities
    assert app.metric[0].label == "recommended dose" and app.metric[0].value.endswith("mg")


def test_predictor_reports_a_bad_genotype_as_a_message(lab):
    app = on_page(app_signed_in("sam"), "predictor")
    app.text_input(key="p_2d6").input("*1-*4")
    app.button(key="FormSubmitter:predict-Predict").click().run()
    assert "CYP2D6" in app.error[0].value and not app.exception


def test_population_shows_distribution_and_pta(lab):
    app = on_page(app_signed_in("sam"), "population")
    app.number_input(key="pop_n").set_value(1000)
    app.button(key="FormSubmitter:population-Simulate population").click().run()
    assert not app.error, [e.value for e in app.error]
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["patients"] == "1,000" and metrics["probability of target attainment"].endswith("%")
    assert len(charts(app)) == 1


def test_audit_page_filters_and_verifies(lab):
    app = on_page(app_signed_in("ada"), "audit")
    app.selectbox(key="audit_actor").set_value("ada").run()
    assert set(app.dataframe[0].value["actor"]) == {"ada"}
    app.button(key="verify").click().run()
    assert app.success[0].value.startswith("Intact:")
    assert _actions(lab.url)[-1] == "audit.verify"
    assert "2,160 readings in the window" in texts(app)  # 3 channels × 720 readings, the last day by default
    assert verify_audit(make_engine(lab.url)).intact


def test_model_review_plots_a_chip_fit_against_its_data_with_band_residuals_and_profile(calibrated_lab):
    app = on_page(app_signed_in("sam"), "review")  # the newest fit first: the calibrate step's
    assert not app.error, [e.value for e in app.error]
    assert app.selectbox(key="review_fit").value == calibrated_lab.fit_ids[-1]
    frames = {title: chart_frames(chart) for chart in charts(app) if (title := _title(chart))}
    band_titles = [t for t in frames if "data, prediction and 90 % band" in t]
    assert sorted(t.split(":")[0] for t in band_titles) == ["drug_medium", "metabolite_medium"]
    curve, points = frames[band_titles[0]][0], frames[band_titles[0]][-1]
    assert len(points) == 6 and len(curve) > 100  # six assays; a dense prediction
    assert (curve["low"] <= curve["prediction"]).all() and (curve["prediction"] <= curve["high"]).all()
    assert any("Weighted residuals" in c.value for c in app.caption)
    app.selectbox(key="review_profile_name").set_value("km").run()
    app.button(key="review_profile_go").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    deadline = time.monotonic() + 180  # the profile runs in a worker thread; the page refreshes its progress
    while not any(t.startswith("profile likelihood of km") for t in map(_title, charts(app))):
        assert app.get("progress") and time.monotonic() < deadline, "the profile neither runs nor ended"
        time.sleep(0.5)
        app.run()
        assert not app.exception and not app.error, [e.value for e in app.error]
    assert any("95 % profile interval of km" in c.value for c in app.caption)


def test_model_review_of_a_fit_without_chip_data_says_why(lab):
    app = on_page(app_signed_in("sam"), "review")
    assert any("store holds no data to plot it against" in e.value for e in app.error)
    assert app.dataframe[0].value["parameter"].tolist() == ["vmax", "km", "prop"]  # the rest still shows


def _title(chart) -> str:
    spec = json.loads(chart.proto.spec)
    title = spec.get("title") or {}
    return title.get("text", "") if isinstance(title, dict) else str(title)


OUTCOME = {
    "chips": {
        "liver-1": {
            "observables": {
                "drug_medium": {
                    "time_h": [0.5, 2, 8],
                    "mean": [40.0, 30.0, 9.0],
                    "p05": [35.0, 24.0, 5.0],
                    "p95": [45.0, 36.0, 14.0],
                }
            },
            "parameters": {
                "vmax": {"estimate": 1.6, "rse_percent": 30.0, "expected_rse_percent": 12.0},
                "km": {"estimate": 16.0, "rse_percent": 80.0, "expected_rse_percent": 25.0},
            },
        }
    },
    "checks": [
        {"chip": "liver-1", "check": "dose concentration", "value": "50 uM", "limit": "<= 200 uM", "ok": True},
        {
            "chip": "liver-1",
            "check": "medium left after sampling",
            "value": "440 uL",
            "limit": ">= 500 uL",
            "ok": False,
        },
    ],
}


def test_a_proposal_shows_its_predicted_band_what_it_teaches_and_a_failed_check(lab):
    from sqlalchemy import update

    engine = make_engine(lab.url)
    with engine.begin() as c:
        c.execute(update(Proposal).where(Proposal.id == lab.proposal_id).values(predicted_json=json.dumps(OUTCOME)))
    engine.dispose()
    app = on_page(app_signed_in("sam"), "proposals")
    (chart,) = charts(app)
    band = chart_frames(chart)[0]
    assert list(band["p05"]) == [35.0, 24.0, 5.0] and list(band["p95"]) == [45.0, 36.0, 14.0]
    taught = app.dataframe[0].value
    assert list(taught["rse expected %"]) == [12.0, 25.0]
    assert (
        "1 of 2 pass" in app.error[0].value
        and "medium left after sampling 440 uL (limit >= 500 uL)" in app.error[0].value
    )
    assert list(app.dataframe[1].value["ok"]) == [True, False]


def test_live_page_draws_the_twin_forecast_over_the_assays(calibrated_lab, monkeypatch):
    from ui.panel import fit_view

    computed = []
    original = fit_view.forecast
    monkeypatch.setattr(fit_view, "forecast", lambda *args: computed.append(args[2]) or original(*args))
    app = on_page(app_signed_in("tina"), "live")
    assert not app.error, [e.value for e in app.error]
    titles = [_title(chart) for chart in charts(app)]
    forecasts = [t for t in titles if "twin forecast" in t]
    fit_id = calibrated_lab.fit_ids[-1]
    assert sorted(forecasts) == [
        f"liver-1 drug_medium: twin forecast (fit {fit_id}) and assays",
        f"liver-1 metabolite_medium: twin forecast (fit {fit_id}) and assays",
    ]
    assert len(titles) == 6 + 2  # every channel, and the forecast of the one fitted chip
    assert sorted(computed) == ["liver-1", "liver-2"]
    app.run()  # a refresh with nothing new reuses the forecast (no recomputation, same charts)
    assert [t for t in map(_title, charts(app)) if "twin forecast" in t] == forecasts
    assert sorted(computed) == ["liver-1", "liver-2"]


def test_a_finished_run_offers_no_controls(lab):
    from sqlalchemy import update

    from store.schema import ProtocolRun

    engine = make_engine(lab.url)
    with engine.begin() as c:
        c.execute(update(ProtocolRun).where(ProtocolRun.id == lab.run_id).values(state="done"))
    engine.dispose()
    app = on_page(app_signed_in("tina"), "live")
    assert all(app.button(key=k).disabled for k in ("pause", "resume", "abort"))
    assert app.checkbox(key="abort_confirm").disabled
