"""Issue #17, items 8 and 9: permissions re-read on every action (a demoted or deactivated user's open
session ends), and no input of any page shows a traceback."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from store import make_engine
from store.audit import verify_audit
from store.schema import Approval, AuditEntry, PanelRequest, Proposal
from tests.ui.test_panel_support import (  # noqa: F401 (lab is a fixture)
    APP,
    PASSWORDS,
    app_signed_in,
    lab,
    on_page,
    texts,
)
from ui.cli.app import app as cli
from ui.panel import decisions, live
from ui.panel.auth import set_active, set_password, set_role, sign_in
from ui.panel.context import engine_for
from ui.panel.errors import SessionEnded


def _rows(url: str, query):
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(query).all()
    finally:
        engine.dispose()


def _signed_out_because(app, why: str) -> None:
    assert not app.exception, [e.value for e in app.exception]
    assert "user" not in app.session_state and not app.dataframe
    assert any(why in w.value for w in app.warning), [w.value for w in app.warning]


# ------------------------------------------------------------------ item 8: sessions


def test_a_revoked_session_ends_on_the_sign_in_page_with_the_reason(lab):
    """The app's entry re-reads the user on every request. (AppTest reruns only the page once it has
    navigated, so the entry is driven here with the session a browser tab would still hold.)"""
    open_tab = sign_in(engine_for(lab.url), "sam", PASSWORDS["sam"])
    set_password(make_engine(lab.url), "sam", "changed-by-an-admin")
    app = AppTest.from_file(str(APP), default_timeout=60)
    app.session_state["user"] = open_tab
    app.run()  # the tab's next request
    _signed_out_because(app, "your password was changed")
    assert [t.value for t in app.title] == ["ChipTwin"] and [b.label for b in app.button] == ["Sign in"]


def test_an_unchanged_session_goes_on(lab):
    app = on_page(app_signed_in("tina"), "live")
    app.run()
    assert app.session_state["user"].username == "tina" and app.title[0].value == "Live run"


def test_a_demoted_scientists_open_session_cannot_approve(lab):
    app = on_page(app_signed_in("sam"), "proposals")
    set_role(make_engine(lab.url), "sam", "technician")  # while the page stays open
    app.text_area(key=f"reason_{lab.proposal_id}").input("looks fine")
    app.text_input(key=f"signature_{lab.proposal_id}").input(PASSWORDS["sam"])
    app.button(key=f"FormSubmitter:decide_{lab.proposal_id}-Approve and sign").click().run()
    _signed_out_because(app, "your role changed from scientist to technician")
    assert _rows(lab.url, select(Proposal.status))[0].status == "pending"
    assert not _rows(lab.url, select(Approval))
    ended = _rows(lab.url, select(AuditEntry.actor, AuditEntry.action).order_by(AuditEntry.seq.desc()).limit(1))
    assert tuple(ended[0]) == ("sam", "panel.session_ended")


def test_a_deactivated_technicians_open_session_cannot_abort(lab):
    app = on_page(app_signed_in("tina"), "live")
    app.checkbox(key="abort_confirm").check().run()
    assert not app.button(key="abort").disabled
    set_active(make_engine(lab.url), "tina", False)
    app.button(key="abort").click().run()
    _signed_out_because(app, "your account was deactivated")
    assert not _rows(lab.url, select(PanelRequest))


def test_the_server_rereads_the_user_on_every_action(lab):
    """Without the page: a SignedIn kept from sign-in counts for nothing once the store says otherwise."""
    db = engine_for(lab.url)
    sam, tina = sign_in(db, "sam", PASSWORDS["sam"]), sign_in(db, "tina", PASSWORDS["tina"])
    set_role(db, "sam", "technician")
    with pytest.raises(SessionEnded, match="role changed from scientist to technician"):
        decisions.decide(db, sam, lab.proposal_id, "approve", "fine", PASSWORDS["sam"])
    set_active(db, "tina", False)
    with pytest.raises(SessionEnded, match="deactivated"):
        live.request_control(db, tina, lab.run_id, "abort")
    ada = sign_in(db, "ada", PASSWORDS["ada"])
    set_password(db, "ada", "a-new-password")
    with pytest.raises(SessionEnded, match="password was changed"):
        live.request_control(db, ada, lab.run_id, "pause")
    assert not _rows(lab.url, select(PanelRequest)) and not _rows(lab.url, select(Approval))
    assert verify_audit(db).intact  # each change of a user row was sealed


def test_a_promotion_also_ends_the_session_but_a_new_sign_in_has_the_new_role(lab):
    db = engine_for(lab.url)
    tina = sign_in(db, "tina", PASSWORDS["tina"])
    set_role(db, "tina", "scientist")
    with pytest.raises(SessionEnded):
        live.request_control(db, tina, lab.run_id, "pause")
    again = sign_in(db, "tina", PASSWORDS["tina"])
    assert again.can_approve and live.request_control(db, again, lab.run_id, "pause")


def test_cli_demotes_deactivates_and_reactivates(lab):
    runner = CliRunner()
    for args, said in (
        (["role", "sam", "technician"], "now has the role technician"),
        (["deactivate", "tina"], "deactivated"),
        (["activate", "tina"], "may sign in again"),
    ):
        result = runner.invoke(cli, ["user", *args, "--db", lab.url])
        assert result.exit_code == 0 and said in result.output, result.output
    listed = runner.invoke(cli, ["user", "list", "--db", lab.url]).output
    assert "sam" in listed and "technician" in listed.split("sam", 1)[1].splitlines()[0]
    refused = runner.invoke(cli, ["user", "role", "sam", "wizard", "--db", lab.url])
    assert refused.exit_code == 2 and "unknown role 'wizard'" in refused.output and "Traceback" not in refused.output
    missing = runner.invoke(cli, ["user", "deactivate", "nobody", "--db", lab.url])
    assert missing.exit_code == 2 and "there is no user 'nobody'" in missing.output


# ------------------------------------------------------------------ item 9: inputs


@pytest.mark.parametrize(
    "key, typed, named",
    [
        ("p_strengths", "'--", "available strengths"),
        ("p_strengths", "25, nan", "available strengths"),
        ("p_strengths", "-5", "available strengths"),
        ("p_target", "'--", "target window"),
        ("p_target", "2:inf", "target window"),
        ("p_regimen", "'--", "regimen"),
        ("p_regimen", "", "regimen"),
        ("p_2d6", "'--", "CYP2D6"),
    ],
)
def test_predictor_junk_gives_one_message_not_a_traceback(lab, key, typed, named):
    app = on_page(app_signed_in("sam"), "predictor")
    app.text_input(key=key).input(typed)
    app.button(key="FormSubmitter:predict-Predict").click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert len(app.error) == 1 and named in app.error[0].value, [e.value for e in app.error]


@pytest.mark.parametrize("key, typed", [("pop_regimen", "'--"), ("pop_target", "'--")])
def test_population_junk_gives_a_message(lab, key, typed):
    app = on_page(app_signed_in("sam"), "population")
    app.text_input(key=key).input(typed)
    app.button(key="FormSubmitter:population-Simulate population").click().run()
    assert not app.exception and len(app.error) == 1, [e.value for e in app.error]


@pytest.mark.parametrize("typed", ["'--", "100%", "_x_", "x" * 3000])
def test_audit_filter_takes_anything(lab, typed):
    app = on_page(app_signed_in("ada"), "audit")
    app.text_input(key="audit_action").input(typed).run()
    assert not app.exception, [e.value for e in app.exception]
    if len(typed) > 2000:
        assert "too long" in app.error[0].value
    else:
        assert app.dataframe[0].value.empty  # taken literally: no action contains it


def test_a_bug_behind_an_action_is_one_line_not_a_traceback(lab, monkeypatch):
    from ui.panel import twin_tools

    def broken(*args, **kwargs):
        raise KeyError("an internal slip")

    monkeypatch.setattr(twin_tools, "predict_patient", broken)
    app = on_page(app_signed_in("sam"), "predictor")
    app.button(key="FormSubmitter:predict-Predict").click().run()
    assert not app.exception and "failed inside ChipTwin (KeyError)" in app.error[0].value
    assert "Traceback" not in texts(app)
