"""End to end with a real runner: `chiptwin panel` on the store a runner (in-process thread, simulated
rig, accelerated clock) is writing; in Chromium a technician presses Pause and sees the runner
acknowledge it on the page, then Resume. The live page of this real run is saved for the README
(docs/img/panel-live.png): the runner's chips, its doses and samples marked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from store import make_engine
from store.schema import DoseEvent, PanelRequest, Sample
from tests.net import free_loopback_port
from tests.protocols.runner_helpers import Background, protocol_text, sim_runner, wait_until
from tests.ui.test_panel_browser import CHROMIUM, CHROMIUM_ARGS, _eventually, _go, _shot, _wait_healthy
from ui.panel.auth import add_user

pytestmark = pytest.mark.timeout(240)  # a hang guard: ~30 s quiet, over 90 s at load 16+
PASSWORD = "technician-pw-1"
STEPS = """
[[steps]]
kind = "dose"
concentration = "10 uM"
chips = ["chip1", "chip2"]

[[steps]]
kind = "sample"
volume = "20 uL"
assay = "lcms"
at = ["0.25 h", "1 h"]

[[steps]]
kind = "wait"
duration = "40 h"
"""


def _count(url: str, table) -> int:  # noqa: ANN001
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return len(connection.execute(select(table.id)).all())
    finally:
        engine.dispose()


def _panel(url: str, cwd: Path) -> tuple[subprocess.Popen, str]:
    port = free_loopback_port()
    env = {**os.environ, "CHIPTWIN_PANEL_REFRESH_S": "1"}
    command = [sys.executable, "-m", "ui.cli.app", "panel", "--db", url, "--port", str(port)]
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    return process, f"http://127.0.0.1:{port}"


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # the panel and its streamlit child, nothing else
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    process.stderr.close()


def test_pause_and_resume_acknowledged_by_a_real_runner(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"!!! {CHROMIUM} is missing (apt-get install chromium); the browser test is SKIPPED !!!")
    from playwright.sync_api import sync_playwright

    url = f"sqlite:///{tmp_path / 'lab.db'}"
    with sim_runner(tmp_path, protocol_text(STEPS), rate=600.0) as (runner, _sim):
        engine = runner.ctx.recorder.engine
        add_user(engine, "tina", "technician", PASSWORD, display_name="Tina")
        background = Background(runner)
        panel, base = _panel(url, tmp_path)
        try:
            # the run doses both chips and takes its samples (0.25 h and 1 h: 1.5 s and 6 s of wall time)
            assert wait_until(lambda: _count(url, DoseEvent) >= 2 and _count(url, Sample) >= 4, 30.0), (
                "the runner did not dose and sample"
            )
            _wait_healthy(base, panel)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                try:
                    page = browser.new_page(viewport={"width": 1440, "height": 1000})
                    page.set_default_timeout(45_000)  # a busy machine draws slowly
                    page.goto(base)
                    page.get_by_label("Username").fill("tina")
                    page.get_by_role("textbox", name="Password").fill(PASSWORD)
                    page.get_by_role("button", name="Sign in").click()
                    page.get_by_role("heading", name="Overview").first.wait_for()
                    _go(page, "Live run", "Live run")
                    _eventually(lambda: page.locator(".vega-embed").count() >= 4, "the live plots of the run's chips")

                    page.get_by_role("button", name="Pause").click()
                    # the runner answers within 0.1 s, so the page may never show the request pending:
                    # what the technician must see is the acknowledgement
                    page.get_by_text("(pause) done: acknowledged by the runner").wait_for()
                    assert runner.control.state == "paused"
                    page.get_by_role("button", name="Resume").click()
                    page.get_by_text("(resume) done: acknowledged by the runner").wait_for()
                    assert runner.control.state == "running"
                    with engine.connect() as connection:
                        rows = connection.execute(
                            select(
                                PanelRequest.kind,
                                PanelRequest.state,
                                PanelRequest.acknowledged_utc_s,
                                PanelRequest.requested_by,
                            ).order_by(PanelRequest.id)
                        ).all()
                    assert [(k, s, by) for k, s, _, by in rows] == [
                        ("pause", "done", "tina"),
                        ("resume", "done", "tina"),
                    ]
                    assert all(t is not None for _, _, t, _ in rows)
                    page.get_by_role("heading", name="chip1 (liver)").first.wait_for()
                    page.set_viewport_size({"width": 1440, "height": 2400})  # both chips in the picture
                    page.wait_for_timeout(2500)  # a refresh or two: the plots after the resume
                    _shot(page, "panel-live", docs=True)
                finally:
                    browser.close()
        finally:
            runner.control.stop("aborted", "test over")
            background.result(10.0)
            _stop(panel)
