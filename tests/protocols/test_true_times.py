"""Times are true (#12 item 3): on an accelerated rig, readings and doses carry the rig's clock while
every audit entry carries wall-clock time, monotonic along the chain, with the rig's time beside it."""

from __future__ import annotations

import json
import time

from sqlalchemy import select

from store.audit import verify_audit
from store.schema import AuditEntry, DoseEvent
from tests.protocols.runner_helpers import protocol_text, sim_runner

STEPS = """
[[steps]]
kind = "dose"
volume = "10 uL"
amount = "1 nmol"
chips = ["chip1"]

[[steps]]
kind = "wait"
duration = "3 h"

[[steps]]
kind = "dose"
volume = "10 uL"
amount = "1 nmol"
chips = ["chip1"]
"""
RATE = 7200.0  # two rig hours a wall second: the rig's clock runs far ahead of the wall clock


def test_audit_times_are_wall_clock_and_never_go_backwards_on_an_accelerated_rig(tmp_path) -> None:
    wall_before = time.time()
    with sim_runner(tmp_path, protocol_text(STEPS), rate=RATE) as (runner, _sim):
        assert runner.run() == "done"
        engine = runner.ctx.recorder.engine
        wall_after = time.time()
        with engine.connect() as c:
            entries = c.execute(select(AuditEntry).order_by(AuditEntry.seq)).all()
            doses = c.execute(select(DoseEvent).order_by(DoseEvent.id)).all()
        report = verify_audit(engine)
    assert report.intact and len(entries) >= 8
    times = [e.t_utc_s for e in entries]
    assert times == sorted(times), "an audit entry is dated before the one it follows"
    assert all(wall_before - 1.0 <= t <= wall_after + 1.0 for t in times), "an audit time is not the wall clock"
    rig_times = [json.loads(e.payload_json).get("rig_clock_utc_s") for e in entries]
    ahead = [t for t in rig_times if t is not None]
    assert len(ahead) >= len(doses) == 2  # the entries of the run's actions keep the rig's time beside the wall's
    assert max(ahead) - min(ahead) >= 3 * 3600 - 60  # the 3 h wait is in the rig's time, not the wall's
    assert doses[1].t_utc_s - doses[0].t_utc_s >= 3 * 3600 - 60  # doses are stamped on the rig's clock


def test_an_accelerated_run_is_read_in_wall_dates_and_run_time_never_in_the_future(tmp_path) -> None:
    """The run keeps its wall-clock start and end; the overview and `chiptwin runs list` show no date
    past now and no negative age, although the rig's clock ended three hours ahead."""
    from store.repositories import runs
    from ui.cli.runs import run_view
    from ui.panel import lab
    from ui.run_clock import clock_of

    wall_before = time.time()
    with sim_runner(tmp_path, protocol_text(STEPS), rate=RATE) as (runner, _sim):
        assert runner.run() == "done"
        engine = runner.ctx.recorder.engine
        wall_after = time.time()
        (run,) = runs.listing(engine)
        view = run_view(engine, run.id)
        latest = lab.latest(engine)
        instruments = lab.instruments(engine)
    assert run.started_utc_s is not None and run.ended_utc_s is not None
    assert run.ended_utc_s - run.started_utc_s >= 3 * 3600 - 60  # the run's own clock covered the wait
    assert run.started_wall_utc_s is not None and run.ended_wall_utc_s is not None
    assert wall_before - 1.0 <= run.started_wall_utc_s <= run.ended_wall_utc_s <= wall_after + 1.0
    assert run.ended_wall_utc_s - run.started_wall_utc_s < 0.5 * (run.ended_utc_s - run.started_utc_s)
    assert view["ended_wall_utc_s"] == run.ended_wall_utc_s
    clock = clock_of(run)
    assert clock is not None and clock.simulated
    read = latest.dropna(subset=["age_s"])
    assert not read.empty
    assert (read["age_s"] >= 0).all(), "a reading is younger than now: its age is below zero"
    assert read["time"].str.startswith("run +").all()  # run time, not a date days ahead
    contact = instruments["last contact"].dropna()
    assert not contact.empty and contact.str.startswith("run +").all()
