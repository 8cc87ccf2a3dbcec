"""The store the panel reads (one engine per URL, shared by every browser tab) and the signed-in user."""

from __future__ import annotations

import importlib
import os
import threading

from sqlalchemy import Engine

from store import open_store
from store.engine import ENV_VAR, resolve_url

_engines: dict[str, Engine] = {}
_lock = threading.Lock()
_warm_up_started = threading.Event()
# The twin and calibration stack (scipy, the chip solvers) takes seconds to import; the pages
# that draw the twin (live forecast, model review, proposals, simulators) all need it.
HEAVY_MODULES = ("ui.panel.fit_view", "ui.panel.twin_tools")


def store_url() -> str:
    """The URL `chiptwin panel --db` hands over through $CHIPTWIN_DB (default ./chiptwin.db)."""
    return resolve_url(os.environ.get(ENV_VAR))


def engine_for(url: str | None = None) -> Engine:
    """Open (once) and return the store at ``url``; raises a StoreError a user can act on."""
    key = resolve_url(url) if url else store_url()
    with _lock:
        if key not in _engines:
            _engines[key] = open_store(key)
        return _engines[key]


def warm_up_in_background() -> None:
    """Import HEAVY_MODULES once per panel process, off the script thread, starting when the first
    visitor arrives: by the time someone signs in and opens a twin page, the import is paid (a page
    that asks earlier waits on Python's import lock for the rest of it, never imports twice)."""
    with _lock:  # two first visitors at once start one thread
        if _warm_up_started.is_set():
            return
        _warm_up_started.set()

    def import_all() -> None:
        for name in HEAVY_MODULES:
            importlib.import_module(name)

    threading.Thread(target=import_all, name="panel-warm-up", daemon=True).start()


def dispose_engines() -> None:
    """Close every engine (tests, benchmarks)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
