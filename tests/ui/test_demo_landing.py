"""`make demo` lands somewhere a person can use (#12 items 1–2, in part): demo users with
passwords printed once, a sign-in hint that names the store in use, and a summary with
estimates, intervals, units and the hidden truth."""

from __future__ import annotations

from rich.console import Console

from protocols.demo.summary import parameter_units, summary_tables
from store import make_engine
from store.migrate import upgrade
from tests.ui.test_panel_support import app_signed_in, lab  # noqa: F401 (fixture)
from ui.cli.panel import DEMO_USERS, demo_users
from ui.panel.auth import list_users, sign_in


def test_demo_users_get_fresh_passwords_each_time(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'demo.db'}", create=True)
    upgrade(engine)
    first = demo_users(engine)
    assert set(first) == set(DEMO_USERS)
    assert all(sign_in(engine, name, password) is not None for name, password in first.items())
    roles = {u["username"]: u["role"] for u in list_users(engine)}
    assert roles == DEMO_USERS
    second = demo_users(engine)  # a second demo on the same store: new passwords, the old ones stop working
    assert all(second[name] != first[name] for name in DEMO_USERS)
    assert all(sign_in(engine, name, first[name]) is None for name in DEMO_USERS)
    assert all(sign_in(engine, name, second[name]) is not None for name in DEMO_USERS)
    engine.dispose()


def test_the_sign_in_hint_names_the_store_in_use(lab) -> None:  # noqa: F811
    app = app_signed_in(None)
    hint = " ".join(c.value for c in app.caption)
    assert f"--db {lab.url.removeprefix('sqlite:///')}" in hint


SUMMARY = {
    "run_id": 1,
    "state": "done",
    "wall_time_s": 141.6,
    "rounds": 1,
    "readings_stored": 10871,
    "doses_executed": 16,
    "intents_confirmed": 16,
    "alarms": [
        {"severity": "warning", "source": "pump3", "message": "pump3: NE-1000 alarm S: motor stalled", "run_id": None}
    ],
    "truth": {"chip1": {"vmax": 2.0, "km": 10.0}},
    "per_round": [
        {
            "round": 1,
            "fit_id": 3,
            "error": {"vmax": 0.0953, "km": 0.405},
            "ci_width": {"vmax": 1.8, "km": None},
            "estimates": {
                "chip1": {"vmax": {"estimate": 2.2, "ci95": [1.7, 2.9]}, "km": {"estimate": 15.0, "ci95": None}}
            },
        }
    ],
}


def _text(tables) -> str:  # noqa: ANN001
    console = Console(record=True, width=200)
    for table in tables:
        console.print(table)
    return console.export_text()


def test_the_summary_reads_with_units_intervals_and_the_truth() -> None:
    text = _text(summary_tables(SUMMARY))
    units = parameter_units()
    vmax_row = next(line for line in text.splitlines() if "│ vmax" in line or " vmax " in line and "chip1" in line)
    assert "2.2" in vmax_row and "1.7 – 2.9" in vmax_row and units["vmax"] in vmax_row and "yes" in vmax_row
    assert "×1.10" in vmax_row  # 2.2 against a truth of 2.0
    assert "not estimable" in text and "×1.50" in text  # km: no interval; error factor 15/10
    assert "1 warning" in text and "motor stalled" in text  # a device alarm without a run id is counted
    assert "10,871" in text
