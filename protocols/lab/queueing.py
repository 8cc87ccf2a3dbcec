"""Putting a protocol on a rig's queue, and taking it off: the one way in for the CLI, the panel and SiLA 2.

A protocol is checked against the rig it is queued for before anything is stored, so an entry on
the queue always names a known rig and a protocol that rig can run. A rig is known once a lab
supervisor has registered it (its ``rig`` row holds the rig file's text). Each change is audited
in the same transaction as the queue row it records.
"""

from __future__ import annotations

import time

from sqlalchemy import Engine, select

from instruments.errors import ConfigError
from instruments.rig.model import parse_rig
from protocols.errors import ProtocolError, RigFileError
from protocols.language.api import parse_protocol
from protocols.language.rig_view import SimpleRig, rig_view_from_rig_file
from store.audit import append_audit
from store.repositories import queue
from store.schema import Rig as RigRow


class QueueRefused(ProtocolError, ValueError):
    """A queue action that cannot be taken: an unknown rig, an entry that has already started."""


def known_rigs(engine: Engine) -> list[str]:
    """Rigs a supervisor has registered (those with a rig file in the store), by name."""
    with engine.connect() as c:
        return sorted(str(n) for n in c.execute(select(RigRow.name).where(RigRow.config_toml != "")).scalars())


def rig_view(engine: Engine, rig_name: str) -> SimpleRig:
    """The registered rig ``rig_name`` as the protocol language checks against it."""
    with engine.connect() as c:
        text = c.execute(select(RigRow.config_toml).where(RigRow.name == rig_name)).scalar()
    if not text:
        names = ", ".join(known_rigs(engine)) or "none yet (start `chiptwin lab serve` first)"
        raise QueueRefused(f"rig {rig_name!r} is not known to this lab; fix: use one of: {names}")
    try:
        return rig_view_from_rig_file(parse_rig(text, f"rig {rig_name}").spec)
    except ConfigError as exc:
        raise RigFileError(f"the stored file of rig {rig_name!r} is no longer valid: {exc}") from None


def enqueue(
    engine: Engine,
    *,
    protocol_text: str,
    protocol_name: str,
    rig_name: str,
    queued_by: str,
    not_before_utc_s: float | None = None,
) -> int:
    """Check ``protocol_text`` against ``rig_name`` and queue it; the entry's id (ProtocolFileError lists problems)."""
    parse_protocol(protocol_text, rig_view(engine, rig_name), filename=protocol_name or "protocol.toml")
    now = time.time()
    with engine.begin() as c:
        entry_id = queue.add(
            c,
            rig_name=rig_name,
            protocol_text=protocol_text,
            protocol_name=protocol_name,
            queued_by=queued_by,
            now_utc_s=now,
            not_before_utc_s=not_before_utc_s,
        )
        append_audit(
            c,
            queued_by,
            "queue.add",
            entity="queuedrun",
            entity_id=entry_id,
            payload={"rig": rig_name, "protocol": protocol_name, "not_before_utc_s": not_before_utc_s},
            t_utc_s=now,
        )
    return entry_id


def cancel(engine: Engine, entry_id: int, *, by: str, reason: str) -> None:
    """Take a queued entry off the queue; QueueRefused once a supervisor has claimed or started it."""
    now = time.time()
    with engine.begin() as c:
        entry = queue.get(c, entry_id)
        if not queue.cancel(c, entry_id, by=by, reason=reason, now_utc_s=now):
            run = f" (run {entry.run_id}: abort that run instead)" if entry.run_id else ""
            raise QueueRefused(
                f"queue entry {entry_id} is {entry.state.value}{run}; only a queued entry can be cancelled"
            )
        append_audit(
            c, by, "queue.cancel", entity="queuedrun", entity_id=entry_id, payload={"reason": reason}, t_utc_s=now
        )
