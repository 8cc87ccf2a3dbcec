"""`chiptwin queue …`: put a protocol on a rig's queue, list the queues, take an entry off.

chiptwin queue add overnight.toml --rig liver4 --user sam [--not-before 2026-12-05T06:00Z]
chiptwin queue list [--rig liver4] [--json]
chiptwin queue cancel 7 --user sam

A thin layer over ``protocols.lab.queueing`` (the checks and the audit trail are there). Adding and
cancelling are a scientist's: the password comes from ``$CHIPTWIN_PASSWORD`` or is asked for.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ui.cli.store import DbOption, JsonOption

if TYPE_CHECKING:
    from sqlalchemy import Engine

queue_app = typer.Typer(help="The run queue: protocols waiting for their rig (started by `chiptwin lab serve`).")
UserOption = Annotated[str, typer.Option("--user", help="Who does it: a scientist (password: $CHIPTWIN_PASSWORD).")]
PASSWORD_ENV = "CHIPTWIN_PASSWORD"


def _utc(seconds: float | None) -> str:
    return "" if seconds is None else datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def parse_not_before(text: str) -> float:
    """ISO 8601 (``2026-12-05T06:00Z``, ``2026-12-05 06:00+01:00``); without a zone it is UTC."""
    from protocols.lab.queueing import QueueRefused

    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise QueueRefused(
            f"--not-before {text!r} is not a date and time; fix: ISO 8601, e.g. 2026-12-05T06:00Z (UTC)"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def _scientist(engine: Engine, username: str) -> str:
    """Sign ``username`` in (audited); only a scientist may change a queue."""
    from ui.panel.auth import sign_in
    from ui.panel.errors import NotAllowed

    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        password = typer.prompt(f"Password of {username}", hide_input=True)
    who = sign_in(engine, username, password, where="cli")
    if who is None:
        raise NotAllowed(f"{username!r} is not an active user with that password; fix: check --user and the password")
    if who.role != "scientist":
        raise NotAllowed(
            f"{username!r} is a {who.role}; only a scientist may change a rig's queue; fix: ask a scientist"
        )
    return who.username


@queue_app.command("add")
def queue_add(
    protocol_path: Annotated[Path, typer.Argument(help="The protocol file (TOML).")],
    rig: Annotated[str, typer.Option("--rig", help="The rig's name (see `chiptwin queue list`).")],
    user: UserOption,
    not_before: Annotated[
        Optional[str], typer.Option("--not-before", help="Not before this time (ISO 8601; UTC without a zone).")
    ] = None,
    db: DbOption = None,
) -> None:
    """Check the protocol against the rig and queue it; prints the entry's id."""
    from protocols.lab.queueing import enqueue
    from protocols.language.api import read_protocol_text
    from store import open_store

    text = read_protocol_text(protocol_path)
    when = None if not_before is None else parse_not_before(not_before)
    engine = open_store(db)
    try:
        by = _scientist(engine, user)
        entry_id = enqueue(
            engine,
            protocol_text=text,
            protocol_name=protocol_path.name,
            rig_name=rig,
            queued_by=by,
            not_before_utc_s=when,
        )
    finally:
        engine.dispose()
    after = "" if when is None else f", not before {_utc(when)} UTC"
    typer.echo(f"queue entry {entry_id}: {protocol_path.name} on rig {rig}{after}")


@queue_app.command("list")
def queue_list(
    rig: Annotated[Optional[str], typer.Option("--rig", help="Only this rig's queue.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every queue entry, oldest first: its rig, protocol, state and run; times are wall-clock UTC."""
    from store import open_store
    from store.repositories import queue

    engine = open_store(db)
    try:
        entries = queue.listing(engine, rig_name=rig)
    finally:
        engine.dispose()
    if as_json:
        rows = [{**e.__dict__, "state": e.state.value} for e in entries]
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(entries)} queue entries; times are wall-clock UTC")
    for column in ("id", "rig", "protocol", "state", "run", "queued by", "queued (UTC)", "not before (UTC)", "note"):
        table.add_column(column)
    for e in entries:
        run = "" if e.run_id is None else str(e.run_id)
        table.add_row(
            str(e.id), e.rig_name, e.protocol_name, e.state.value, run, e.queued_by,
            _utc(e.queued_utc_s), _utc(e.not_before_utc_s), e.note,
        )  # fmt: skip
    Console(width=max(Console().width, 140)).print(table)


@queue_app.command("cancel")
def queue_cancel(
    entry_id: Annotated[int, typer.Argument(help="The queue entry (see `chiptwin queue list`).")],
    user: UserOption,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit trail).")] = "cancelled",
    db: DbOption = None,
) -> None:
    """Take a queued entry off its rig's queue (refused once it has started: abort its run instead)."""
    from protocols.lab.queueing import cancel
    from store import open_store

    engine = open_store(db)
    try:
        cancel(engine, entry_id, by=_scientist(engine, user), reason=reason)
    finally:
        engine.dispose()
    typer.echo(f"queue entry {entry_id} cancelled")


def register(app: typer.Typer) -> None:
    app.add_typer(queue_app, name="queue")
