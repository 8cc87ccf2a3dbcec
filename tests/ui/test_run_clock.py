"""True times: a run keeps its own clock (days ahead on an accelerated rig) and the wall clock's start
and end beside it; a person reads run time for a simulated run and real dates for a real one."""

from __future__ import annotations

import json
import time
from datetime import timezone

from sqlalchemy import insert
from typer.testing import CliRunner

from store import make_engine
from store.migrate import upgrade
from store.repositories import runs
from store.schema import Rig
from store.states import RunState
from tests.ui.test_panel_support import lab  # noqa: F401 (a fixture)
from ui.cli.app import app as cli
from ui.run_clock import RunClock, duration_text, wall_text

DAY_S = 86400.0


def test_run_time_reads_days_hours_minutes_and_is_never_negative():
    assert duration_text(12 * 3600 + 30 * 60) == "+12 h 30 min"
    assert duration_text(2 * DAY_S + 4 * 3600 + 10 * 60 + 59) == "+2 d 4 h 10 min"
    assert duration_text(45 * 60) == "+45 min"
    assert duration_text(30) == "+30 s"
    assert duration_text(-5) == "+0 s"


def test_a_simulated_run_reads_run_time_and_its_wall_start_a_real_run_reads_dates():
    wall_start = 1.8e9
    simulated = RunClock(3600.0, started_s=wall_start + 3 * DAY_S, started_wall_s=wall_start, tz=timezone.utc)
    assert simulated.simulated
    assert simulated.text(wall_start + 3 * DAY_S + 12.5 * 3600) == "+12 h 30 min"
    assert simulated.started_text() == "2027-01-15 08:00:00 UTC (simulated at 3600× real time)"
    assert (
        simulated.ended_text(wall_start + 5 * DAY_S, wall_start + 60)
        == "2027-01-15 08:01:00 UTC (run time +2 d 0 h 0 min)"
    )
    assert simulated.hours(wall_start + 3 * DAY_S + 1800) == 0.5
    real = RunClock(1.0, started_s=1.7e9, tz=timezone.utc)
    assert real.text(1.7e9 + 60) == "2023-11-14 22:14:20 UTC"
    assert real.started_text() == wall_text(1.7e9, timezone.utc) == "2023-11-14 22:13:20 UTC"
    future = time.time() + DAY_S  # a real clock never reads the future: clamped to now
    assert real.text(future) <= wall_text(time.time() + 1, timezone.utc)


def _run_through_its_states(url: str, clock_rate: float, ahead_s: float) -> int:
    engine = make_engine(url, create=True)
    upgrade(engine)
    try:
        with engine.begin() as c:
            rig_id = c.execute(insert(Rig).values(name="rig-a", created_utc_s=time.time())).inserted_primary_key[0]
            run_id, _ = runs.create(c, rig_id, "protocol", clock_rate)
        for state in (RunState.RUNNING, RunState.DONE):
            with engine.begin() as c:
                assert runs.set_state(c, runs.get(c, run_id), state, time.time() + ahead_s)
        return run_id
    finally:
        engine.dispose()


def test_an_accelerated_run_keeps_its_clock_and_the_wall_clock_in_both_backends(store_url):
    before = time.time()
    run_id = _run_through_its_states(store_url, 3600.0, 3 * DAY_S)
    after = time.time()
    engine = make_engine(store_url)
    try:
        run = runs.get(engine, run_id)
        [listed] = runs.listing(engine)
    finally:
        engine.dispose()
    assert run.started_utc_s is not None and run.started_utc_s > after + 2 * DAY_S  # the rig's clock, days ahead
    assert run.started_wall_utc_s is not None and run.ended_wall_utc_s is not None
    assert before - 1 <= run.started_wall_utc_s <= run.ended_wall_utc_s <= after + 1  # the wall's, monotonic
    assert (listed.started_wall_utc_s, listed.ended_wall_utc_s) == (run.started_wall_utc_s, run.ended_wall_utc_s)


def test_runs_list_and_show_print_wall_dates_and_run_time_never_a_future_date(tmp_path):
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    run_id = _run_through_its_states(url, 3600.0, 3 * DAY_S)
    runner = CliRunner()
    listed = runner.invoke(cli, ["runs", "list", "--db", url])
    assert listed.exit_code == 0, listed.output
    today = wall_text(time.time())[:10]
    future = wall_text(time.time() + 3 * DAY_S)[:10]
    assert today in listed.output and "3600×" in listed.output and "(run time +" in listed.output
    assert future not in listed.output  # the rig's clock, 3 days ahead, is not shown as a date
    shown = runner.invoke(cli, ["runs", "show", str(run_id), "--db", url])
    assert shown.exit_code == 0, shown.output
    assert f"started {today}" in shown.output and future not in shown.output
    data = json.loads(runner.invoke(cli, ["runs", "list", "--db", url, "--json"]).output)
    assert data[0]["started_wall_utc_s"] <= time.time() < data[0]["started_utc_s"]


def test_the_overview_reads_a_simulated_rigs_readings_in_run_time_with_a_wall_age(lab):  # noqa: F811
    from sqlalchemy import update

    from store.schema import ProtocolRun
    from tests.ui.test_panel_support import T0
    from ui.panel import lab as lab_view
    from ui.panel import run_times

    engine = make_engine(lab.url)
    try:
        started_wall = time.time() - 10.0  # two simulated hours at 3600× took two wall seconds
        with engine.begin() as c:
            c.execute(
                update(ProtocolRun)
                .where(ProtocolRun.id == lab.run_id)
                .values(clock_rate=3600.0, started_utc_s=T0, started_wall_utc_s=started_wall)
            )
        shown = run_times.readable_readings(engine, lab_view.latest(engine))
    finally:
        engine.dispose()
    assert set(shown["time"]) == {"+1 h 59 min"}  # the newest reading, at T0 + 7190 s on the rig's clock
    assert all(7.0 <= age <= 60.0 for age in shown["age_s"])  # wall seconds since it was taken, not negative
