"""Shared fixtures: real databases (a SQLite file per test, a PostgreSQL schema per test)."""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from pathlib import Path

import psutil
import psycopg
import pytest

# sila2 compiles its protobuf files when first imported; in a process that has already loaded
# streamlit's protobufs that fails ("duplicate file name SiLAFramework.proto" from upb), while the
# other order works. The SiLA 2 server never imports streamlit; the test process imports both, so
# it loads sila2 first, before any test module pulls in the panel.
import sila2.framework  # noqa: F401, E402  (order matters: see above)

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference"
# The longest modules (pytest --durations, about 30–150 s each on a quiet machine). They are
# collected first, so that xdist hands them out at the start, alternately to its two workers,
# and the short modules fill in behind them (a long module handed out last would run alone).
# Only the order changes; a module missing from this list just runs in its usual place.
# (pyproject's --no-loadscope-reorder keeps xdist from re-sorting modules by their number of tests.)
LONGEST_MODULES = (
    "tests/ui/test_demo_browser.py",
    "tests/ui/test_report.py",
    "tests/protocols/test_demo_determinism.py",
    "tests/protocols/test_lab_crashes.py",
    "tests/protocols/test_rig_lease.py",
    "tests/protocols/test_resume_crash.py",
    "tests/ui/test_sila_server.py",
    "tests/ui/test_panel_pages.py",
    "tests/ui/test_panel_trust.py",
    "tests/protocols/test_faults_rig_and_store.py",
    "tests/test_fuzz_inputs.py",
    "tests/protocols/test_lab_inputs.py",
    "tests/ui/test_opcua_endpoint.py",
    "tests/test_readme_tour.py",
    "tests/ui/test_panel_browser.py",
    "tests/ui/test_panel_profile.py",
    "tests/ui/test_panel_units.py",
    "tests/protocols/test_protocol_inputs.py",
    "tests/store/test_audit.py",
    "tests/ui/test_panel_browser_runner.py",
    "tests/protocols/test_lab_supervisor.py",
    "tests/twin/test_batch_sensitivity.py",
    "tests/calibration/test_multistart.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: k for k, name in enumerate(LONGEST_MODULES)}
    items.sort(key=lambda item: rank.get(Path(str(item.path)).relative_to(REPO).as_posix(), len(rank)))


PG_ADMIN_DSN = os.environ.get("CHIPTWIN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_unavailable() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]


@pytest.fixture(scope="session")
def postgres_admin_dsn() -> str:
    reason = _postgres_unavailable()
    if reason:
        pytest.skip(f"!!! PostgreSQL at {PG_ADMIN_DSN} did not answer ({reason}); PostgreSQL tests SKIPPED !!!")
    return PG_ADMIN_DSN


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'lab.db'}"


@pytest.fixture
def postgres_url(postgres_admin_dsn: str):
    """A fresh schema per test, chosen through search_path so the store code is unchanged."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_admin_dsn, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    yield postgres_admin_dsn.replace("postgresql://", "postgresql+psycopg://") + f"?options=-csearch_path%3D{schema}"
    with psycopg.connect(postgres_admin_dsn, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request) -> str:
    """Run the test once on each backend."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture(scope="session", autouse=True)
def _audit_key_and_anchors_in_tmp(tmp_path_factory):
    """The audit trail's key and anchor files in the session's own folder, never the user's
    ~/.config (session scope: set before any module-scoped fixture writes a store)."""
    folder = tmp_path_factory.mktemp("audit")
    saved = {name: os.environ.get(name) for name in ("CHIPTWIN_AUDIT_KEY_FILE", "CHIPTWIN_AUDIT_ANCHOR_DIR")}
    os.environ["CHIPTWIN_AUDIT_KEY_FILE"] = str(folder / "audit.key")
    os.environ["CHIPTWIN_AUDIT_ANCHOR_DIR"] = str(folder / "anchors")
    yield
    for name, value in saved.items():
        os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)


_MAIN = sys.modules["__main__"]


@pytest.fixture(autouse=True)
def _main_module_restored():
    """Streamlit's AppTest runs a page as ``__main__`` and leaves it there; a later spawn-based
    process pool would then re-run that page in every child. Each test starts with pytest's own."""
    yield
    if sys.modules.get("__main__") is not _MAIN:
        sys.modules["__main__"] = _MAIN


LEAK_GRACE_S = 10.0  # a thread or child told to stop at teardown gets this long (busy CI machines)


def _leftovers(threads_before: set[threading.Thread], children_before: set[int], ports_before: set[int]) -> list[str]:
    me = psutil.Process()
    found = [
        f"thread {t.name!r}" for t in threading.enumerate() if t not in threads_before and t.is_alive() and not t.daemon
    ]
    found += [
        f"child process {p.pid} ({' '.join(p.cmdline()[:3])})"
        for p in _children(me)
        if p.pid not in children_before and not _multiprocessing_helper(p)
    ]
    found += [f"listening port {port}" for port in _listening(me) - ports_before]
    return found


def _children(me: psutil.Process) -> list[psutil.Process]:
    alive = []
    for child in me.children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                alive.append(child)
        except psutil.NoSuchProcess:
            pass
    return alive


def _multiprocessing_helper(process: psutil.Process) -> bool:
    """multiprocessing's resource tracker and forkserver live as long as the test process, by design."""
    try:
        command = " ".join(process.cmdline())
    except psutil.NoSuchProcess:
        return True
    return "multiprocessing.resource_tracker" in command or "multiprocessing.forkserver" in command


def _listening(me: psutil.Process) -> set[int]:
    return {c.laddr.port for c in me.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}


@pytest.fixture(scope="module", autouse=True)
def _no_leaks_per_module(request):
    """Like ophyd-async's leak check: when a test module (its tests and its fixtures) is done, no
    non-daemon thread, child process or listening socket it started is left behind."""
    me = psutil.Process()
    threads, children, ports = set(threading.enumerate()), {p.pid for p in _children(me)}, _listening(me)
    yield
    deadline = time.monotonic() + LEAK_GRACE_S
    while (left := _leftovers(threads, children, ports)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if left:
        pytest.fail(f"{request.module.__name__} left behind: {', '.join(left)}", pytrace=False)
