"""Profile likelihood in the panel: a background worker with progress, Cancel, and a stop of its own
when the browser session goes away; the profile hook of calibration.uncertainty.profile it relies on."""

from __future__ import annotations

import functools
import re
import threading
import time

import numpy as np
import pytest

from calibration.estimate.error_models import ErrorModel
from calibration.estimate.individual import IndividualProblem, fit_individual
from calibration.uncertainty.profile import ProfileCancelled, optimum, profile_grid, profile_lockstep, profile_parameter
from tests.ui.test_panel_support import (  # noqa: F401 (lab, calibrated_lab are fixtures)
    APP,
    app_signed_in,
    calibrated_lab,
    charts,
    lab,
    on_page,
)
from ui.panel import fit_view, profile_worker
from ui.panel.profile_worker import ProfileJob, ProfileWorkers

T = np.linspace(0.2, 10, 60)
WAIT_S = 120.0  # a generous bound for a loaded CI machine; the tests end far sooner


def decay(p):
    return p["a"] * np.exp(-p["k"] * T)


@pytest.fixture(scope="module")
def small():
    """A two-parameter fit (milliseconds a profile point) and its optimum."""
    rng = np.random.default_rng(3)
    dv = decay({"a": 10.0, "k": 0.3}) + 0.3 * rng.standard_normal(T.size)
    problem = IndividualProblem(("a", "k"), decay, dv, ErrorModel("add"), bounds={"a": (0.1, 100), "k": (1e-3, 10)})
    record = fit_individual(problem, {"a": 5.0, "k": 0.5})
    return problem, optimum(problem, record)


def _profile_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("profile-") and t.is_alive()]


@pytest.fixture(autouse=True)
def no_thread_left(monkeypatch):
    """Every test gets its own registry; none may leave a profile thread behind."""
    workers = ProfileWorkers(timeout_s=30.0)
    monkeypatch.setattr(profile_worker, "WORKERS", workers)
    yield workers
    assert workers.stop_all(timeout=WAIT_S)
    assert not _profile_threads(), _profile_threads()


def _slowed(task_points, pause_s: float):
    """A task over ``task_points``' profile that takes at least ``pause_s`` per point."""

    def task(should_stop, progress):
        return task_points(should_stop, lambda done, total: (progress(done, total), time.sleep(pause_s)))

    return task


def _wait(condition, timeout: float = WAIT_S, every: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every)


# the hook in calibration.uncertainty.profile


def test_the_profile_reports_progress_and_stops_between_points(small):
    problem, x_hat = small
    seen = []
    full = profile_parameter(problem, x_hat, "k", progress=lambda done, total: seen.append((done, total)))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1][0] == seen[-1][1] == len(full.values) - 1
    assert all(t2 <= t1 for (_, t1), (_, t2) in zip(seen, seen[1:]))  # the most points still possible only falls
    asked = []
    with pytest.raises(ProfileCancelled):
        profile_parameter(problem, x_hat, "k", should_stop=lambda: asked.append(1) or len(asked) > 3)
    assert len(asked) == 4  # asked before each point, stopped before the fourth
    grid = np.exp(x_hat[1]) * np.array([0.5, 0.8, 1.25, 2.0])
    ticks = []
    assert len(profile_grid(problem, x_hat, "k", grid, progress=lambda d, t: ticks.append((d, t))).values) == 4
    assert ticks == [(1, 4), (2, 4), (3, 4), (4, 4)]
    with pytest.raises(ProfileCancelled):
        profile_grid(problem, x_hat, "k", grid, should_stop=lambda: True)


# the worker, without Streamlit


def test_progress_advances_and_cancel_stops_the_worker_within_one_point(small, no_thread_left):
    problem, x_hat = small
    grid = np.exp(x_hat[1]) * np.geomspace(0.2, 5, 40)
    task = _slowed(
        lambda stop, progress: profile_grid(problem, x_hat, "k", grid, should_stop=stop, progress=progress), 0.05
    )
    job = no_thread_left.start(("browser-1", 7, "", "k"), task)
    _wait(lambda: job.status().done >= 3)
    status = job.status()
    assert status.running and status.total == 40 and status.elapsed_s > 0
    _wait(lambda: job.status().done > status.done)  # it advances
    at_cancel = job.status().done
    job.cancel()
    assert job.join(WAIT_S)
    status = job.status()
    assert status.state == "cancelled" and status.result is None
    assert status.done <= at_cancel + 1  # the point being computed ends, no other starts


def test_a_finished_profile_is_the_result_and_a_session_runs_one_at_a_time(small, no_thread_left):
    problem, x_hat = small
    gate = threading.Event()

    def task(stop, progress):
        gate.wait(WAIT_S)
        return profile_parameter(problem, x_hat, "k", should_stop=stop, progress=progress)

    job = no_thread_left.start(("browser-1", 7, "", "k"), task)
    assert no_thread_left.start(("browser-1", 7, "", "k"), task) is job  # the same key: the same job
    with pytest.raises(Exception, match="still running"):
        no_thread_left.start(("browser-1", 7, "", "a"), task)
    gate.set()
    assert job.join(WAIT_S)
    status = job.status()
    assert status.state == "done" and status.done == status.total == len(status.result.values) - 1
    assert status.result.lower < np.exp(x_hat[1]) < status.result.upper


def test_an_abandoned_session_s_worker_stops_after_the_timeout(small, monkeypatch):
    problem, x_hat = small
    workers = ProfileWorkers(timeout_s=0.5)  # the timeout is injectable; the panel's is 30 s
    monkeypatch.setattr(profile_worker, "WORKERS", workers)
    grid = np.exp(x_hat[1]) * np.geomspace(0.2, 5, 1000)  # far longer than the timeout
    task = _slowed(
        lambda stop, progress: profile_grid(problem, x_hat, "k", grid, should_stop=stop, progress=progress), 0.02
    )
    kept, dropped = workers.start(("kept", 1, "", "k"), task), workers.start(("gone", 1, "", "k"), task)
    started = time.monotonic()
    while dropped.thread.is_alive():  # only the first session's page keeps asking
        kept.heartbeat()
        assert time.monotonic() - started < WAIT_S
        time.sleep(0.05)
    assert dropped.status(heartbeat=False).state == "abandoned"
    assert time.monotonic() - started >= 0.5
    assert kept.status().running
    kept.cancel()
    assert kept.join(WAIT_S) and kept.status().state == "cancelled"
    assert workers.stop_all(WAIT_S)


# the page


def _progress_text(app) -> str:
    return " ".join(p.proto.text for p in app.get("progress"))


def _done(app) -> int:
    match = re.search(r": (\d+) of at most (\d+) points, (\d+) s", _progress_text(app))
    return int(match.group(1)) if match else -1


def _run_until(app, condition, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while True:
        app.run()
        assert not app.exception, [e.value for e in app.exception]
        if condition(app):
            return app
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _slowed_lockstep(problem, x_hat, name, should_stop=None, progress=None):
    """The page's profile (``profile_lockstep``: the chip fit's points in lockstep) made long enough to
    watch: a threshold never crossed (every side walks all its rounds) and 0.2 s before each scoring round."""

    def slow() -> bool:
        time.sleep(0.2)
        return should_stop()

    return profile_lockstep(problem, x_hat, name, threshold=1e9, should_stop=slow, progress=progress)


def test_the_review_page_shows_progress_and_cancel_stops_the_profile(calibrated_lab, no_thread_left, monkeypatch):
    at_cancel = []
    original = ProfileJob.cancel
    monkeypatch.setattr(ProfileJob, "cancel", lambda job: at_cancel.append(job.status(False).done) or original(job))
    monkeypatch.setattr(fit_view, "profile_lockstep", _slowed_lockstep)
    app = on_page(app_signed_in("sam"), "review")
    app.selectbox(key="review_profile_name").set_value("km").run()
    app.button(key="review_profile_go").click().run()
    assert not app.error, [e.value for e in app.error]
    assert app.button(key="review_profile_go").disabled  # one profile at a time
    _run_until(app, lambda a: _done(a) >= 1)
    first = _done(app)
    assert "profiling km (fit" in _progress_text(app)
    _run_until(app, lambda a: _done(a) > first)  # it advances
    (job,) = no_thread_left.running()
    app.button(key="review_profile_cancel").click().run()
    assert job.join(WAIT_S)
    status = job.status(False)
    # the round being computed reports its points, no other round starts (points of a round finish together)
    assert status.state == "cancelled" and status.result is None and at_cancel[0] <= status.done < status.total
    _run_until(app, lambda a: not a.get("progress"))
    assert any("profile of km cancelled after" in i.value for i in app.info)
    assert not app.button(key="review_profile_go").disabled
    assert not [c for c in map(_title, charts(app)) if c.startswith("profile likelihood")]


def test_the_review_page_plots_a_finished_profile(calibrated_lab, monkeypatch):
    monkeypatch.setattr(fit_view, "profile_lockstep", functools.partial(profile_lockstep, max_steps=2))
    app = on_page(app_signed_in("sam"), "review")
    app.selectbox(key="review_profile_name").set_value("km").run()
    app.button(key="review_profile_go").click().run()
    _run_until(app, lambda a: any(t.startswith("profile likelihood of km") for t in map(_title, charts(a))))
    assert any("95 % profile interval of km" in c.value for c in app.caption)
    assert not app.get("progress") and not app.error


def test_a_role_that_may_not_compute_cannot_start_a_profile(calibrated_lab, no_thread_left):
    from sqlalchemy import insert

    from store import make_engine
    from store.schema import Role
    from ui.panel.auth import add_user

    engine = make_engine(calibrated_lab.url)
    with engine.begin() as c:
        c.execute(insert(Role).values(name="viewer", can_control=False, can_approve=False, can_administer=False))
    add_user(engine, "vic", "viewer", "viewer-pw-123")
    engine.dispose()
    app = app_signed_in(None)
    app.text_input(key="username").input("vic")
    app.text_input(key="password").input("viewer-pw-123")
    app.button[0].click().run()
    app = on_page(app, "review")
    assert app.button(key="review_profile_go").disabled
    assert not no_thread_left.running()


def _title(chart) -> str:
    import json

    spec = json.loads(chart.proto.spec)
    title = spec.get("title") or {}
    return title.get("text", "") if isinstance(title, dict) else str(title)
