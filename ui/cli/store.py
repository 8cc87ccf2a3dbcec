"""`chiptwin db …` and `chiptwin audit …`: the lab record's schema and its audit trail."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from store.audit import AuditReport


DbOption = Annotated[
    Optional[str],
    typer.Option("--db", envvar="CHIPTWIN_DB", help="Store URL (default: ./chiptwin.db; or postgresql+psycopg://…)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
MAX_PROBLEM_LINES = 50

db_app = typer.Typer(help="The lab store: create or upgrade its schema, show its version.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained, anchored audit trail.", no_args_is_help=True)


def _where(db: str | None) -> str:
    from store.engine import parse_url

    return parse_url(db).render_as_string(hide_password=True)


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None) -> None:
    """Create the schema in an empty database, or bring an older one up to date (data kept)."""
    from store import make_engine
    from store.migrate import upgrade

    engine = make_engine(db, create=True)
    before, after = upgrade(engine)
    if before == after:
        typer.echo(f"{_where(db)}: schema already at {after}")
    else:
        typer.echo(f"{_where(db)}: schema {before or 'empty'} → {after}")


@db_app.command("current")
def db_current(db: DbOption = None) -> None:
    """Show the database's schema revision and this code's."""
    from store import make_engine
    from store.migrate import code_head, database_revision

    engine = make_engine(db)
    typer.echo(f"{_where(db)}: database at {database_revision(engine) or 'empty'}, code at {code_head()}")


@audit_app.command("verify")
def audit_verify(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Check the chain, its head against the anchor file, and every regulated row against its entry;
    one line per problem (exit 1 if there is one). Anchors and key: see docs/store.md."""
    from store import open_store
    from store.audit import verify_audit

    report = verify_audit(open_store(db))
    if as_json:
        typer.echo(json.dumps(_report_json(report)))
    elif report.intact:
        anchored = (
            "not anchored yet" if report.anchored_seq is None else f"head anchored at entry {report.anchored_seq}"
        )
        typer.echo(
            f"audit trail intact: {report.entries_checked} entries, last hash {report.last_hash[:16]}…, "
            f"{anchored}; {report.rows_checked} regulated rows match their entries"
        )
    else:
        for line in _problem_lines(report):
            typer.echo(line, err=True)
    if not report.intact:
        raise typer.Exit(1)


def _report_json(report: AuditReport) -> dict:
    broken = report.first_broken
    return {
        "intact": report.intact,
        "entries_checked": report.entries_checked,
        "last_hash": report.last_hash,
        "first_broken": None if broken is None else broken.__dict__,
        "anchored_seq": report.anchored_seq,
        "rows_checked": report.rows_checked,
        "problems": [p.__dict__ for p in report.problems],
    }


def _problem_lines(report: AuditReport) -> list[str]:
    lines = []
    broken = report.first_broken
    if broken is not None:
        when = datetime.fromtimestamp(broken.t_utc_s, timezone.utc).isoformat(timespec="seconds")
        lines.append(
            f"audit trail BROKEN at entry {broken.seq} ({when}, {broken.actor}: {broken.action}): "
            f"{broken.reason}. The {report.entries_checked} entries before it are intact."
        )
    shown = report.problems[:MAX_PROBLEM_LINES]
    lines += [f"audit trail BROKEN ({p.kind}): {p.message}" for p in shown]
    if len(report.problems) > len(shown):
        lines.append(f"… and {len(report.problems) - len(shown)} more problems (--json lists them all)")
    return lines


@audit_app.command("anchor")
def audit_anchor(db: DbOption = None) -> None:
    """Anchor the trail's head now (every append does this itself; use it for a store from before anchoring)."""
    from store import open_store
    from store.audit_anchor import anchor_head, anchor_path

    engine = open_store(db)
    outcome = anchor_head(engine)
    if outcome == "refused":
        typer.echo(
            "error: the trail does not continue its last anchor, so its head was not anchored; "
            "run `chiptwin audit verify`",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"{_where(db)}: head {outcome} in {anchor_path(engine.url)}")


@audit_app.command("adopt")
def audit_adopt(
    actor: Annotated[str, typer.Option("--actor", help="Who accepts the rows as they are.")], db: DbOption = None
) -> None:
    """Seal every regulated row that has no audit entry yet (a store from before seals). It accepts rows
    written behind the program's back too: read `chiptwin audit verify` first."""
    from store import open_store
    from store.audit import adopt_unsealed

    count = adopt_unsealed(open_store(db), actor)
    typer.echo(f"{count} regulated rows sealed by {actor}")
