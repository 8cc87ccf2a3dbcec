"""`chiptwin db …` and `chiptwin audit …`: the lab record's schema and its audit trail."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Annotated, Optional

import typer

from store import make_engine, open_store
from store.audit import verify_audit
from store.engine import parse_url
from store.migrate import code_head, database_revision, upgrade
from ui.errors import user_errors

DbOption = Annotated[
    Optional[str],
    typer.Option("--db", envvar="CHIPTWIN_DB", help="Store URL (default: ./chiptwin.db; or postgresql+psycopg://…)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]

db_app = typer.Typer(help="The lab store: create or upgrade its schema, show its version.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit trail.", no_args_is_help=True)


def _where(db: str | None) -> str:
    return parse_url(db).render_as_string(hide_password=True)


@db_app.command("upgrade")
@user_errors
def db_upgrade(db: DbOption = None) -> None:
    """Create the schema in an empty database, or bring an older one up to date (data kept)."""
    engine = make_engine(db, create=True)
    before, after = upgrade(engine)
    if before == after:
        typer.echo(f"{_where(db)}: schema already at {after}")
    else:
        typer.echo(f"{_where(db)}: schema {before or 'empty'} → {after}")


@db_app.command("current")
@user_errors
def db_current(db: DbOption = None) -> None:
    """Show the database's schema revision and this code's."""
    engine = make_engine(db)
    typer.echo(f"{_where(db)}: database at {database_revision(engine) or 'empty'}, code at {code_head()}")


@audit_app.command("verify")
@user_errors
def audit_verify(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Walk the audit chain and report the first broken link (exit 1 if there is one)."""
    report = verify_audit(open_store(db))
    broken = report.first_broken
    if as_json:
        typer.echo(json.dumps({
            "intact": report.intact, "entries_checked": report.entries_checked, "last_hash": report.last_hash,
            "first_broken": None if broken is None else broken.__dict__,
        }))
    elif broken is None:
        typer.echo(f"audit trail intact: {report.entries_checked} entries, last hash {report.last_hash[:16]}…")
    else:
        when = datetime.fromtimestamp(broken.t_utc_s, timezone.utc).isoformat(timespec="seconds")
        typer.echo(
            f"audit trail BROKEN at entry {broken.seq} ({when}, {broken.actor}: {broken.action}): {broken.reason}. "
            f"The {report.entries_checked} entries before it are intact.", err=True,
        )
    if broken is not None:
        raise typer.Exit(1)
