"""`chiptwin rig status`: who holds each rig (store.lease) — host, pid, run, heartbeat age — and its
latest run's poll slots (store.repositories.polls): stored, skipped, down (no runner) and lost."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from ui.cli.store import DbOption, JsonOption

rig_app = typer.Typer(help="Rigs in the lab record: who holds each one.", no_args_is_help=True)


@rig_app.command("status")
def rig_status(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Each rig's holder (host, pid, run), since when, heartbeat age in seconds, whether it expired, and
    its latest run's poll slots (stored of expected, skipped, down, lost)."""
    from sqlalchemy import select

    from store import open_store
    from store.lease import lease_rows
    from store.repositories import polls, runs
    from store.schema import Rig

    engine = open_store(db)
    try:
        with engine.connect() as connection:
            names = list(connection.execute(select(Rig.name)).scalars())
        rows = lease_rows(engine, names)
        latest: dict[str, int] = {}
        for run in runs.listing(engine):  # newest first
            latest.setdefault(run.rig, run.id)
        for r in rows:
            run_id = latest.get(r["rig"])
            r["latest_run"] = run_id
            r["poll_slots"] = None if run_id is None else polls.ledger(engine, run_id).total.to_dict()
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{sum(r['held'] for r in rows)} of {len(rows)} rigs held")
    for column in ("rig", "holder", "since", "heartbeat age", "expired", "latest run: poll slots"):
        table.add_column(column)
    for r in rows:
        age = "" if r["heartbeat_age_s"] is None else f"{r['heartbeat_age_s']:.0f} s"
        expired = "" if not r["held"] else ("[red]yes[/red]" if r["expired"] else "no")
        table.add_row(
            r["rig"], r["holder"], r["since_utc"], age, expired, _slots_text(r["latest_run"], r["poll_slots"])
        )
    Console(width=max(Console().width, 140)).print(table)


def _slots_text(run_id: int | None, slots: dict | None) -> str:
    if run_id is None or slots is None:
        return ""
    lost = f"[red]{slots['lost']} lost[/red]" if slots["lost"] else "0 lost"
    return (
        f"run {run_id}: {slots['stored']} of {slots['expected']} slots stored, {slots['skipped']} skipped, "
        f"{slots['down']} down, {lost}"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(rig_app, name="rig")
