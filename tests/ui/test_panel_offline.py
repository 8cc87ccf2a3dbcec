"""Labs are often offline: a browser session of the panel asks no host but this machine for anything.

`chiptwin panel` on a free port against a real SQLite store (the panel tests' lab), Debian's
Chromium through Playwright; every request of the browser context is recorded while a scientist
signs in, opens every page and downloads the study report, and each one's host must be loopback.
The report's text holds the run's newest estimates with their units.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from store import make_engine
from store.schema import Fit
from tests.ui.test_panel_browser import CHROMIUM, CHROMIUM_ARGS, panel  # noqa: F401 (fixture)
from tests.ui.test_panel_support import PASSWORDS

pytestmark = pytest.mark.timeout(120)

PAGES = [
    "Live run",
    "Proposals",
    "Model review",
    "Body-on-chip simulator",
    "Drug response predictor",
    "Virtual population",
    "Audit and data",
    "Overview",
]


def review_estimates(lab) -> dict[str, float]:
    """θ estimates of the newest fit of the lab's run, from the store."""
    engine = make_engine(lab.url)
    with engine.connect() as c:
        text = c.execute(
            select(Fit.record_json).where(Fit.run_id == lab.run_id).order_by(Fit.created_utc_s.desc())
        ).first()[0]
    engine.dispose()
    return {name: theta["estimate"] for name, theta in json.loads(text)["theta"].items()}


def _loopback(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about", "chrome-extension"):
        return True  # no network: in the page itself
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it would be resolved and asked


def test_a_browser_session_of_the_panel_asks_only_this_machine(panel):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"!!! {CHROMIUM} is missing (apt-get install chromium); the offline test is SKIPPED !!!")
    from playwright.sync_api import sync_playwright

    lab, base = panel
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.on("request", lambda request: requests.append(request.url))
            page = context.new_page()
            page.set_default_timeout(20_000)
            page.goto(base)
            page.get_by_label("Username").fill("sam")
            page.get_by_role("textbox", name="Password").fill(PASSWORDS["sam"])
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("heading", name="Overview").first.wait_for()
            icon = page.locator("link[rel*='icon']").first.get_attribute("href")
            for name in PAGES:
                page.get_by_role("link", name=name).click()
                page.get_by_role("heading", name=name).first.wait_for()
                page.wait_for_load_state("networkidle")
                if name == "Model review":  # the study report, as a scientist downloads it
                    with page.expect_download() as download:
                        page.get_by_role("button", name="Study report (PDF)").click()
                    report = PdfReader(download.value.path())
        finally:
            browser.close()
    assert icon and icon.startswith("data:image/svg+xml")  # our own favicon, inside the page
    report_text = " ".join(" ".join(sheet.extract_text() for sheet in report.pages).split())
    newest = review_estimates(lab)
    assert f"vmax {newest['vmax']:.4g} nmol/h" in report_text and f"km {newest['km']:.4g} µM" in report_text
    assert f"run {lab.run_id}" in report_text and "Audit chain status: INTACT" in report_text
    assert len(requests) > 20  # the session was recorded (page, scripts, styles, fonts, websocket)
    assert any("/static/" in url for url in requests)
    outside = sorted({url for url in requests if not _loopback(url)})
    assert not outside, f"the panel asked hosts outside this machine: {outside}"
