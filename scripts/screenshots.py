"""Screenshot the pages of the control panel on a demo store (the README's pictures, docs/img/).

    .venv/bin/chiptwin demo --no-panel                    # writes ./chiptwin-demo.db
    .venv/bin/python scripts/screenshots.py chiptwin-demo.db                  # every page
    .venv/bin/python scripts/screenshots.py chiptwin-demo.db --page "Model review" --charts 2 \
        --out docs/img/panel-review.png                                       # one page

Works on a copy of the store (it adds a scientist to sign in with), serves it with `chiptwin panel`
on a free loopback port and drives Debian's Chromium with Playwright (never a downloaded browser);
one sign-in, then each page in turn. The pages of the twin are shot as they open (before a click).
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

from store import make_engine
from ui.panel.auth import add_user

DOCS_IMG = Path(__file__).resolve().parents[1] / "docs" / "img"
CHROMIUM = "/usr/bin/chromium"  # Debian's: never a downloaded browser
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


@dataclass(frozen=True)
class Shot:
    link: str  # the page's link in the sidebar (and its heading)
    file: str  # under docs/img
    charts: int = 0  # wait until this many charts are drawn


SHOTS = (
    Shot("Overview", "panel-overview.png"),
    Shot("Live run", "panel-live.png", charts=3),
    Shot("Proposals", "panel-proposals.png", charts=1),
    Shot("Model review", "panel-review.png", charts=2),
    Shot("Runs", "panel-runs.png"),
    Shot("Body-on-chip simulator", "panel-simulator.png"),
    Shot("Drug response predictor", "panel-predictor.png"),
    Shot("Virtual population", "panel-population.png"),
    Shot("Learning patient twin", "panel-tdm.png"),
    Shot("Audit and data", "panel-audit.png"),
)


def _settle(page, timeout_s: float = 60.0) -> None:
    """Wait until the page has stopped running and its tables have drawn (slow on a busy machine)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        running = page.locator('[data-testid="stStatusWidget"]').count()
        skeletons = page.locator('[data-testid="stSkeleton"]').count()
        grids = page.locator('[data-testid="stDataFrame"]').count()
        drawn = page.locator('[data-testid="stDataFrame"] canvas').count()
        if not running and not skeletons and drawn >= grids:
            break
        time.sleep(0.5)
    time.sleep(3.0)  # the last charts' transitions


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


@contextmanager
def signed_in_panel(db: Path, width: int, height: int) -> Iterator:
    """A browser page signed in as a scientist to `chiptwin panel` serving a copy of `db`."""
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
            env={**os.environ, "CHIPTWIN_PANEL_REFRESH_S": "3600"},  # still pictures: no refresh mid-shot
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
                yield page
                browser.close()
        finally:
            os.killpg(panel.pid, signal.SIGTERM)  # the panel and its streamlit: their own group
            try:
                panel.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(panel.pid, signal.SIGKILL)
                panel.wait(timeout=10)


def shoot(page, shot: Shot, out: Path) -> Path:
    """Open one page from the sidebar, wait for its charts and tables, and save it."""
    page.get_by_role("link", name=shot.link, exact=True).click()
    page.get_by_role("heading", name=shot.link).first.wait_for()
    if shot.charts:
        try:
            page.wait_for_function(f"document.querySelectorAll('.vega-embed').length >= {shot.charts}", timeout=30_000)
        except PlaywrightTimeout:  # a store without them (no proposal waits): shoot what is there
            print(f"{shot.link}: fewer than {shot.charts} charts drawn within 30 s")
    _settle(page)
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out), full_page=True)
    print(f"written {out}")
    return out


def shoot_all(db: Path, shots: tuple[Shot, ...], out: Path, width: int, height: int) -> list[Path]:
    with signed_in_panel(db, width, height) as page:
        return [shoot(page, shot, out / shot.file) for shot in shots]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", type=Path, help="a SQLite store, e.g. chiptwin-demo.db")
    parser.add_argument("--page", help='only this page, its link as the sidebar shows it, e.g. "Model review"')
    parser.add_argument("--charts", type=int, default=1, help="with --page: wait until this many charts are drawn")
    parser.add_argument("--out", type=Path, default=DOCS_IMG, help="the folder; with --page, the PNG file")
    parser.add_argument("--width", type=int, default=1440)
    parser.add_argument("--height", type=int, default=1600, help="the panel scrolls inside the page: a tall window")
    args = parser.parse_args()
    if args.page:
        with signed_in_panel(args.db, args.width, args.height) as page:
            shoot(page, Shot(args.page, args.out.name, args.charts), args.out)
    else:
        shoot_all(args.db, SHOTS, args.out, args.width, args.height)


if __name__ == "__main__":
    main()
