"""The audit trail's head, anchored outside the database with a key the database does not hold.

The hash chain in ``auditentry`` shows an edited or removed entry, but not a removed *tail*, nor a
chain recomputed after an edit: whoever can write the table can rewrite every hash after their
change. So after every commit that appended to the trail, the head (sequence number and entry hash)
is also written as one line of an append-only anchor file:

    <seq> TAB <entry_hash> TAB <hmac> TAB <wall time, UTC ISO 8601>

``hmac`` is HMAC-SHA256 under the audit key over ``seq|entry_hash|wall time`` — an HMAC over the whole
chain, since ``entry_hash`` covers every entry before it. Without the key nobody can write a line
that verifies, and ``store.audit.verify_audit`` compares the table with the anchors: a head behind
the anchored head is a truncation, an anchored entry whose hash changed is a rewrite.

Where (docs/store.md):
- key: ``$CHIPTWIN_AUDIT_KEY_FILE``, else ``$XDG_CONFIG_HOME/chiptwin/audit.key`` (``~/.config/…``);
  64 hex characters, created with mode 0600 the first time an anchor is written.
- anchors: ``$CHIPTWIN_AUDIT_ANCHOR_DIR/<store>.audit-anchors``; else beside a SQLite file
  (``lab.db.audit-anchors``); else, for PostgreSQL, ``$XDG_CONFIG_HOME/chiptwin/anchors/``.

Anchors are written *after* commit, when the connection that appended goes back to the pool, and
from the committed head (not from what the transaction meant to write): a rolled-back append never
leaves an anchor ahead of the table, and a crash between commit and anchor leaves the anchor a
little behind — never a false alarm. A head that no longer continues the last anchor (truncated or
rewritten) is never anchored: the next ``audit verify`` reports it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import URL
from sqlalchemy.pool import Pool

KEY_FILE_ENV = "CHIPTWIN_AUDIT_KEY_FILE"
ANCHOR_DIR_ENV = "CHIPTWIN_AUDIT_ANCHOR_DIR"
ANCHOR_SUFFIX = ".audit-anchors"
_HMAC_CONTEXT = "chiptwin-audit-anchor/1"
_PENDING = "chiptwin.audit.anchor"  # connection-record info key: "this connection appended"
_TAIL_BYTES = 8 * 1024  # ~50 lines: enough to find the newest anchor among concurrent writers
_log = logging.getLogger(__name__)
_keys: dict[Path, bytes] = {}
_keys_lock = threading.Lock()


# ------------------------------------------------------------------ where


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "chiptwin"


def key_path() -> Path:
    explicit = os.environ.get(KEY_FILE_ENV, "").strip()
    return Path(explicit).expanduser().resolve() if explicit else config_dir() / "audit.key"


def anchor_path(url: URL) -> Path:
    """The anchor file of the store at ``url`` (one file per store)."""
    explicit = os.environ.get(ANCHOR_DIR_ENV, "").strip()
    if url.get_backend_name() == "sqlite":
        database = Path(url.database or "").expanduser().resolve()
        if not explicit:
            return database.parent / (database.name + ANCHOR_SUFFIX)
        # one folder for many stores: two lab.db files in different folders must not share anchors
        digest = hashlib.sha256(str(database).encode()).hexdigest()[:16]
        return Path(explicit).expanduser() / f"{database.name}-{digest}{ANCHOR_SUFFIX}"
    identity = url.set(drivername=url.get_backend_name(), password=None).render_as_string(hide_password=False)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{url.host}-{url.port or 5432}-{url.database}")
    folder = Path(explicit).expanduser() if explicit else config_dir() / "anchors"
    return folder / f"{readable}-{digest}{ANCHOR_SUFFIX}"


class Target(NamedTuple):
    anchors: Path
    key: Path


def target_of(engine: Engine) -> Target:
    return Target(anchor_path(engine.url), key_path())


# ------------------------------------------------------------------ the key


def read_key(path: Path) -> bytes | None:
    """The key, or None when there is no key file (verification then cannot check anchors)."""
    with _keys_lock:
        if path in _keys:
            return _keys[path]
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    key = bytes.fromhex(text)
    with _keys_lock:
        _keys[path] = key
    return key


def key_for_writing(path: Path) -> bytes:
    """The key, created (0600, never overwritten) the first time one is needed."""
    found = read_key(path)
    if found is not None:
        return found
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return read_key(path) or b""
    with os.fdopen(handle, "w", encoding="ascii") as out:
        out.write(secrets.token_hex(32) + "\n")
    return read_key(path) or b""


def anchor_hmac(key: bytes, seq: int, entry_hash: str, wall: str) -> str:
    message = f"{_HMAC_CONTEXT}|{seq}|{entry_hash}|{wall}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


# ------------------------------------------------------------------ the anchor file


@dataclass(frozen=True)
class Anchor:
    line: int
    seq: int
    entry_hash: str
    mac: str
    wall: str

    def holds(self, key: bytes) -> bool:
        return hmac.compare_digest(self.mac, anchor_hmac(key, self.seq, self.entry_hash, self.wall))


def parse_line(number: int, text: str) -> Anchor | None:
    parts = text.split("\t")
    if len(parts) != 4 or not parts[0].isdigit() or not re.fullmatch(r"[0-9a-f]{64}", parts[1]):
        return None
    return Anchor(number, int(parts[0]), parts[1], parts[2], parts[3])


def read_anchors(path: Path) -> tuple[list[Anchor], list[int]]:
    """Every anchor line, and the numbers of lines that cannot be read. A last line without its
    newline is a checkpoint torn by a crash while it was written: it is skipped, not reported."""
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    complete = lines[:-1]  # the piece after the last newline is empty or torn
    anchors, unreadable = [], []
    for number, line in enumerate(complete, start=1):
        anchor = parse_line(number, line)
        if anchor is None:
            unreadable.append(number)
        else:
            anchors.append(anchor)
    return anchors, unreadable


def _last_anchor(path: Path, key: bytes) -> Anchor | None:
    """The highest valid anchor among the file's last lines (writers append concurrently)."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - _TAIL_BYTES))
            tail = handle.read().decode("utf-8", errors="replace").split("\n")[1:-1]
    except FileNotFoundError:
        return None
    found = [a for a in (parse_line(0, t) for t in tail) if a is not None and a.holds(key)]
    return max(found, key=lambda a: a.seq, default=None)


def append_anchor(path: Path, key: bytes, seq: int, entry_hash: str) -> None:
    wall = datetime.now(timezone.utc).isoformat(timespec="microseconds")
    line = f"{seq}\t{entry_hash}\t{anchor_hmac(key, seq, entry_hash, wall)}\t{wall}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(handle, line.encode())  # one write to an O_APPEND file: concurrent lines never interleave
    finally:
        os.close(handle)


# ------------------------------------------------------------------ checkpoints


def note_append(connection: Connection) -> None:
    """Called by ``append_audit``: anchor the committed head when this connection goes back to the pool."""
    connection.info[_PENDING] = target_of(connection.engine)


def _read_head(cursor: Any, anchored: Anchor | None) -> tuple[int, str, str | None] | None:
    """(head seq, head hash, hash now at the anchored seq) of the committed table; None when empty."""
    cursor.execute("SELECT seq, entry_hash FROM auditentry ORDER BY seq DESC LIMIT 1")
    head = cursor.fetchone()
    if head is None:
        return None
    at_anchor = None
    if anchored is not None:
        cursor.execute(f"SELECT entry_hash FROM auditentry WHERE seq = {int(anchored.seq)}")
        found = cursor.fetchone()
        at_anchor = found[0] if found else None
    return int(head[0]), str(head[1]), at_anchor


def checkpoint(dbapi_connection: Any, target: Target) -> str:
    """Append the committed head to the anchor file, unless it does not continue the last anchor.

    Returns what happened: "anchored", "current" (anchored already), "empty" or "refused".
    """
    key = key_for_writing(target.key)
    last = _last_anchor(target.anchors, key)
    cursor = dbapi_connection.cursor()
    try:
        found = _read_head(cursor, last)
    finally:
        cursor.close()
        dbapi_connection.rollback()  # leave the pooled connection as clean as the pool left it
    if found is None:
        return "refused" if last is not None else "empty"
    seq, entry_hash, at_anchor = found
    if last is not None and (seq < last.seq or at_anchor != last.entry_hash):
        _log.warning(
            "the audit trail does not continue its anchor at entry %s; not anchored: run `chiptwin audit verify`",
            last.seq,
        )
        return "refused"
    if last is not None and seq == last.seq:
        return "current"
    append_anchor(target.anchors, key, seq, entry_hash)
    return "anchored"


@event.listens_for(Pool, "checkin")
def _on_checkin(dbapi_connection: Any, record: Any) -> None:
    target = record.info.pop(_PENDING, None) if record is not None else None
    if target is None or dbapi_connection is None:
        return
    try:
        checkpoint(dbapi_connection, target)
    except Exception as exc:  # noqa: BLE001 - a missed checkpoint must never fail the write it follows
        _log.warning("could not anchor the audit trail's head in %s: %s", target.anchors, exc)


def anchor_head(engine: Engine) -> str:
    """Anchor the committed head now (``chiptwin audit anchor``: a store that predates anchoring)."""
    raw = engine.raw_connection()
    try:
        return checkpoint(raw, target_of(engine))
    finally:
        raw.close()
