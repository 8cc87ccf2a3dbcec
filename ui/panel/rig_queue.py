"""The Runs page's record and actions: each rig with its lease holder, current run and step, and
queue; queueing and cancelling go through protocols.lab.queueing (it validates and audits), for a
user whose role may approve (a scientist), re-read from the store on every action."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, select

from protocols.errors import ProtocolError
from protocols.lab import queueing
from store.lease import Holder, holder_of
from store.repositories import queue, runs
from store.repositories.queue import QueueEntry
from store.repositories.runs import RunListing
from store.schema import Rig
from store.states import FINAL_RUN_STATES
from ui.panel.auth import SignedIn, require
from ui.panel.errors import InvalidInput

QUEUE_PERMISSION = "approve"  # what puts work on a rig: a scientist's decision, not a technician's


@dataclass(frozen=True)
class RigRuns:
    """One rig as the Runs page shows it."""

    name: str
    holder: Holder | None
    run: RunListing | None  # its newest run that has not ended
    step: str  # the run's current step, "" without one
    queue: list[QueueEntry]


def _current_step(engine: Engine, run_id: int) -> str:
    started = runs.steps(engine, run_id)
    if not started:
        return ""
    last = started[-1]
    return f"step {last.index + 1}: {last.kind} ({last.state})"


def rig_runs(engine: Engine) -> list[RigRuns]:
    """Every rig in the store (and every rig a queue entry names), by name."""
    with engine.connect() as c:
        names = set(c.execute(select(Rig.name)).scalars())
    open_entries = queue.listing(engine, open_only=True)
    names |= {e.rig_name for e in open_entries}
    live = [r for r in runs.listing(engine) if r.state not in FINAL_RUN_STATES]
    found = []
    for name in sorted(names):
        run = next((r for r in live if r.rig == name), None)  # listing is newest first
        found.append(
            RigRuns(
                name=name,
                holder=holder_of(engine, name),
                run=run,
                step="" if run is None else _current_step(engine, run.id),
                queue=[e for e in open_entries if e.rig_name == name],
            )
        )
    return found


def may_queue(engine: Engine, who: SignedIn) -> bool:
    return bool(getattr(who, f"can_{QUEUE_PERMISSION}"))


def queue_protocol(
    engine: Engine,
    who: SignedIn,
    *,
    rig_name: str,
    protocol_text: str,
    protocol_name: str,
    not_before_utc_s: float | None = None,
) -> int:
    """Queue ``protocol_text`` on ``rig_name`` for ``who``; a refusal is one message (InvalidInput)."""
    signer = require(engine, who, QUEUE_PERMISSION)
    if not protocol_text.strip():
        raise InvalidInput("the protocol is empty; fix: upload a protocol file or paste its text")
    try:
        return queueing.enqueue(
            engine,
            protocol_text=protocol_text,
            protocol_name=protocol_name or "pasted.toml",
            rig_name=rig_name,
            queued_by=signer.username,
            not_before_utc_s=not_before_utc_s,
        )
    except ProtocolError as exc:  # QueueRefused and a protocol's own problems, already in words
        raise InvalidInput(str(exc)) from None


def cancel_entry(engine: Engine, who: SignedIn, entry_id: int, reason: str) -> int:
    """Take ``entry_id`` off its rig's queue for ``who``; the entry's id (a refusal is InvalidInput)."""
    signer = require(engine, who, QUEUE_PERMISSION)
    if not reason.strip():
        raise InvalidInput("say why the entry is cancelled (the reason is kept in the audit trail)")
    try:
        queueing.cancel(engine, entry_id, by=signer.username, reason=reason.strip())
    except ProtocolError as exc:
        raise InvalidInput(str(exc)) from None
    return entry_id
