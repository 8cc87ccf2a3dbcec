"""End to end as a visitor meets ChipTwin: `chiptwin demo --port P` as a real process in a temp folder,
Debian's Chromium driven by Playwright. The demo's printed URL and demo-scientist password → sign in →
the run on the Runs page → approve the waiting proposal with the password signature → it is in the
history → the study report PDF from Model review holds the run's estimates as stored → SIGINT stops
the demo and everything it started (its panel and the panel's streamlit)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from pypdf import PdfReader
from sqlalchemy import select

from store import make_engine
from store.schema import Approval, Fit, ProtocolRun
from tests.net import free_loopback_port
from tests.ui.test_panel_browser import CHROMIUM, CHROMIUM_ARGS
from twin.catalogue import get_model
from ui.unit_text import pretty_unit

pytestmark = pytest.mark.timeout(900)  # the demo's closed loop takes 1–2 min, ~9 min on a machine at load 20
DEMO_WAIT_S = 420.0
PASSWORD = re.compile(r"sign in as demo-scientist \(scientist\) with password (\S+)")
URL = re.compile(r"ChipTwin panel on (http://\S+) ")
ENDED_EARLY = re.compile(r"chiptwin demo: run \d+ (aborted|failed|parked)[^\n]*")  # nothing left to wait for


class Output:
    """The demo's stdout and stderr, read by a thread as they come (a full pipe would stall the demo)."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._read, args=(stream,), daemon=True)
            for stream in (process.stdout, process.stderr)
        ]
        for thread in self._threads:
            thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def wait_for(self, pattern: re.Pattern | str, process: subprocess.Popen, timeout_s: float) -> re.Match:
        found = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if (match := found.search(self.text())) is not None:
                return match
            if (early := ENDED_EARLY.search(self.text())) is not None:
                raise AssertionError(f"{early.group(0).strip()} before {found.pattern!r}:\n{self.text()}")
            if process.poll() is not None:
                raise AssertionError(f"the demo exited ({process.returncode}) before {found.pattern!r}:\n{self.text()}")
            time.sleep(0.5)
        raise AssertionError(f"the demo did not print {found.pattern!r} within {timeout_s:.0f} s:\n{self.text()}")

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=10)


def _rows(url: str, query) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(query).all()
    finally:
        engine.dispose()


def _printed_estimates(name: str, unit: str, pdf_text: str) -> list[float]:
    """Every number printed as "<name> <number> <unit>" in the PDF's estimates tables."""
    pattern = rf"(?m)^{re.escape(name)}\s*\n\s*([-+0-9.e]+) {re.escape(unit)}$"
    return [float(x) for x in re.findall(pattern, pdf_text)]


def _stored_estimates(url: str) -> tuple[str, dict[str, float]]:
    """The run's latest fit as stored: its model and, per chip, each estimate (chip/parameter → value)."""
    model, record_json = _rows(url, select(Fit.model, Fit.record_json).order_by(Fit.id.desc()).limit(1))[0]
    record = json.loads(record_json)
    per_chip = record.get("chips") or {"": record}
    return model, {
        f"{chip}/{name}": float(e["estimate"]) for chip, r in per_chip.items() for name, e in r["theta"].items()
    }


@pytest.fixture
def demo(tmp_path):
    port = free_loopback_port()
    env = {**os.environ, "COLUMNS": "200", "CHIPTWIN_PANEL_REFRESH_S": "2"}  # no wrapped lines to parse
    exe = str(Path(sys.executable).with_name("chiptwin"))
    process = subprocess.Popen(
        # the demo's clock is stepped: the rate changes no result (docs/clock.md); at 7200x the last round's
        # approval still waits 6 minutes (720 h of clock) for the browser to sign
        [exe, "demo", "--port", str(port), "--clock-rate", "7200"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group: the finally below can end whatever is left of it
        # Ctrl-C must reach it as in a terminal: a shell's background job inherits SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    output = Output(process)
    try:
        yield process, output, f"sqlite:///{tmp_path / 'chiptwin-demo.db'}"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        output.join()
        process.stdout.close()
        process.stderr.close()


def test_the_demo_from_sign_in_to_the_signed_report(demo, tmp_path):
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium (make system-deps)"
    from playwright.sync_api import sync_playwright

    process, output, url = demo
    base = output.wait_for(URL, process, 120).group(1)
    password = output.wait_for(PASSWORD, process, 30).group(1)
    waiting = output.wait_for(r"The run waits for a person: proposal (\d+)", process, DEMO_WAIT_S)
    proposal_id = int(waiting.group(1))

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000}, accept_downloads=True)
            page.set_default_timeout(60_000)
            page.goto(base)
            page.get_by_label("Username").fill("demo-scientist")
            page.get_by_role("textbox", name="Password").fill(password)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("heading", name="Overview").first.wait_for()

            [(run_id,)] = _rows(url, select(ProtocolRun.id))
            page.get_by_role("link", name="Runs").click()
            page.get_by_role("heading", name="Runs").first.wait_for()
            page.get_by_text(f"Run {run_id}").first.wait_for()  # the demo's run, on its rig

            page.get_by_role("link", name="Proposals").click()
            page.get_by_role("heading", name=f"Proposal {proposal_id}").wait_for()
            page.get_by_label("Reason (kept with the decision)").fill("the most informative next dose")
            page.get_by_role("textbox", name="Signature: your password, demo-scientist").fill(password)
            page.get_by_role("button", name="Approve and sign").click()
            page.get_by_text("No proposal waits for a decision.").wait_for()
            approvals = _rows(url, select(Approval.proposal_id, Approval.decided_by, Approval.decision))
            assert (proposal_id, "demo-scientist", "approved") in [tuple(a) for a in approvals]
            page.get_by_role("heading", name="History").wait_for()
            for said in ("demo-scientist (signed)", "the most informative next dose"):
                page.locator('td[role="gridcell"]', has_text=said).first.wait_for(state="attached")

            # the run goes on after the signature and ends; the demo then serves until Ctrl-C
            output.wait_for("Ctrl-C stops it and ends the demo", process, DEMO_WAIT_S)
            assert [tuple(r) for r in _rows(url, select(ProtocolRun.state))] == [("done",)]

            page.get_by_role("link", name="Model review").click()
            page.get_by_role("heading", name="Model review").first.wait_for()
            with page.expect_download(timeout=120_000) as download:
                page.get_by_role("button", name="Study report (PDF)").click()
            pdf = tmp_path / "report.pdf"
            download.value.save_as(pdf)
        finally:
            browser.close()

    text = "\n".join(page_.extract_text() for page_ in PdfReader(pdf).pages)
    model, stored = _stored_estimates(url)
    spec = get_model(model)
    assert stored
    for key, value in stored.items():
        name = key.split("/", 1)[1]
        printed = _printed_estimates(name, pretty_unit(spec.parameter(name).unit), text)
        assert any(abs(p - value) <= 1e-3 * abs(value) for p in printed), (key, value, printed)

    started = psutil.Process(process.pid).children(recursive=True)  # its panel and the panel's streamlit
    assert len(started) >= 2, started
    os.kill(process.pid, signal.SIGINT)  # Ctrl-C, to the demo alone: it must stop what it started
    assert process.wait(timeout=60) in (0, 1, 130), output.text()
    gone, alive = psutil.wait_procs(started, timeout=30)
    assert not alive, f"still running after the demo stopped: {alive}"
