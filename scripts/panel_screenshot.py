"""Screenshot one page of the control panel on a real store (the README's pictures).

    .venv/bin/chiptwin demo --no-panel                      # writes ./chiptwin-demo.db
    .venv/bin/python scripts/panel_screenshot.py chiptwin-demo.db "Model review" docs/img/panel-review.png

Works on a copy of the store (it adds a user to sign in with), serves it with `chiptwin panel`
on a free loopback port and drives Debian's Chromium with Playwright (never a downloaded browser).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

from store import make_engine
from ui.panel.auth import add_user

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
USER, PASSWORD = "docs", "screenshot-only-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(base: str, timeout_s: float = 40.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the panel did not answer at {base} within {timeout_s:.0f} s")


def shoot(db: Path, page_name: str, out: Path, charts: int, width: int, height: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "panel.db"
        shutil.copyfile(db, copy)
        url = f"sqlite:///{copy}"
        engine = make_engine(url)
        add_user(engine, USER, "scientist", PASSWORD, display_name="Docs")
        engine.dispose()
        port = _free_port()
        panel = subprocess.Popen(
            [sys.executable, "-m", "ui.cli.app", "panel", "--db", url, "--port", str(port)],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_healthy(base)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                page = browser.new_page(viewport={"width": width, "height": height})
                page.set_default_timeout(60_000)
                page.goto(base)
                page.get_by_label("Username").fill(USER)
                page.get_by_role("textbox", name="Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in").click()
                page.get_by_role("heading", name="Overview").first.wait_for()
                page.get_by_role("link", name=page_name).click()
                page.get_by_role("heading", name=page_name).first.wait_for()
                page.wait_for_function(f"document.querySelectorAll('.vega-embed').length >= {charts}")
                time.sleep(1.5)  # let the last charts finish drawing
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out), full_page=True)
                browser.close()
        finally:
            os.killpg(panel.pid, signal.SIGTERM)
            panel.wait(timeout=10)
    print(f"written {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", type=Path, help="a SQLite store, e.g. chiptwin-demo.db")
    parser.add_argument("page", help='the page link as the sidebar shows it, e.g. "Model review"')
    parser.add_argument("out", type=Path)
    parser.add_argument("--charts", type=int, default=1, help="wait until this many charts are drawn")
    parser.add_argument("--width", type=int, default=1440)
    parser.add_argument("--height", type=int, default=2400, help="the panel scrolls inside the page: a tall window")
    args = parser.parse_args()
    shoot(args.db, args.page, args.out, args.charts, args.width, args.height)


if __name__ == "__main__":
    main()
