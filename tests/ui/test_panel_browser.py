"""End to end in a real browser: `chiptwin panel` in a subprocess, Debian Chromium driven by Playwright.

Sign in → live plots → Pause (a PanelRequest row appears) → approve a proposal with a signature
(Approval row + audit entry) → model review → the body-on-chip simulator draws → sign out.
Screenshots go to test-artifacts/ (the README's come from real runs: test_panel_browser_runner, scripts/screenshots.py --page).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select

from store import make_engine
from store.schema import Approval, AuditEntry, PanelRequest
from tests.net import free_loopback_port
from tests.ui.test_panel_support import PASSWORDS, _fill

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
DOCS_IMG = REPO / "docs" / "img"

pytestmark = pytest.mark.timeout(300)  # a hang guard: ~40 s quiet, over 120 s at load 16+


def _wait_healthy(base: str, process: subprocess.Popen, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"chiptwin panel exited with {process.returncode}: {process.stderr.read()}")
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"the panel did not answer at {base} within {timeout_s:.0f} s")


def _eventually(check, what: str, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout_s:.0f} s")


def _rows(url: str, query) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(query).all()
    finally:
        engine.dispose()


@pytest.fixture
def panel(tmp_path):
    lab = _fill(f"sqlite:///{tmp_path / 'lab.db'}")
    port = free_loopback_port()
    env = {**os.environ, "CHIPTWIN_PANEL_REFRESH_S": "2"}
    command = [sys.executable, "-m", "ui.cli.app", "panel", "--db", lab.url, "--port", str(port)]
    process = subprocess.Popen(
        command,
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_healthy(base, process)
        yield lab, base
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # the panel and its streamlit child, nothing else
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        process.stderr.close()


def _shot(page, name: str, *, docs: bool = False) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    if docs:
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ARTIFACTS / f"{name}.png", DOCS_IMG / f"{name}.png")


def _go(page, link: str, heading: str) -> None:
    page.get_by_role("link", name=link).click()
    page.get_by_role("heading", name=heading).first.wait_for()


def test_the_panel_in_a_real_browser(panel):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"!!! {CHROMIUM} is missing (apt-get install chromium); the browser test is SKIPPED !!!")
    from playwright.sync_api import sync_playwright

    lab, base = panel
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.set_default_timeout(45_000)  # a busy machine draws slowly
            page.goto(base)
            page.get_by_label("Username").fill("sam")
            page.get_by_role("textbox", name="Password").fill(PASSWORDS["sam"])
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("heading", name="Overview").first.wait_for()
            _shot(page, "panel-overview")

            _go(page, "Live run", "Live run")
            _eventually(lambda: page.locator(".vega-embed").count() >= 6, "six live plots")
            page.get_by_role("button", name="Pause").click()
            requests = _eventually(
                lambda: _rows(lab.url, select(PanelRequest.kind, PanelRequest.state)), "a PanelRequest row"
            )
            assert [tuple(r) for r in requests] == [("pause", "pending")]
            page.get_by_text("pause requested").wait_for()
            _shot(page, "panel-live-fixture")  # docs/img/panel-live.png: a real run (test_panel_browser_runner)

            _go(page, "Proposals", "Proposals")
            page.get_by_label("Reason (kept with the decision)").fill("most informative next dose")
            page.get_by_role("textbox", name="Signature: your password, sam").fill(PASSWORDS["sam"])
            page.get_by_role("button", name="Approve and sign").click()
            approvals = _eventually(
                lambda: _rows(lab.url, select(Approval.decided_by, Approval.decision)), "an Approval row"
            )
            assert [tuple(a) for a in approvals] == [("sam", "approved")]
            audited = _rows(lab.url, select(AuditEntry.actor).where(AuditEntry.action == "proposal.approve"))
            assert [a.actor for a in audited] == ["sam"]
            page.get_by_text("No proposal waits for a decision.").wait_for()
            # the decision is in the history below, with who signed it and why (#12 item 5)
            page.get_by_role("heading", name="History").wait_for()
            for said in ("approved", "sam (signed)", "most informative next dose"):  # the grid's accessible cells
                page.locator('td[role="gridcell"]', has_text=said).first.wait_for(state="attached")

            _go(page, "Model review", "Model review")
            _eventually(lambda: page.locator(".vega-embed").count() >= 2, "the review plots")
            _shot(page, "panel-review")  # docs/img/panel-review.png: a real run (scripts/screenshots.py --page)

            _go(page, "Body-on-chip simulator", "Body-on-chip simulator")
            page.get_by_role("button", name="Simulate").click()
            _eventually(lambda: page.locator(".vega-embed").count() >= 2, "the simulator plots", 30.0)
            _shot(page, "panel-simulator")

            page.get_by_role("button", name="Sign out").click()
            page.get_by_role("button", name="Sign in").wait_for()
            assert (
                _rows(lab.url, select(AuditEntry.action).order_by(AuditEntry.seq.desc()).limit(1))[0].action
                == "panel.sign_out"
            )
        finally:
            browser.close()
