"""The store the panel reads (one engine per URL, shared by every browser tab) and the signed-in user."""

from __future__ import annotations

import os
import threading

from sqlalchemy import Engine

from store import open_store
from store.engine import ENV_VAR, resolve_url

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


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


def dispose_engines() -> None:
    """Close every engine (tests, benchmarks)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
