"""`chiptwin proposals …`: the twin's proposals and their decisions, for headless use.

chiptwin proposals list [--run 1] [--json]          # every proposal, its status, who decided and why
chiptwin proposals approve 3 --reason "within the tox margin" --user sam      # asks for sam's password
printf '%s\\n' "$PASSWORD" | chiptwin proposals reject 3 --reason "…" --user sam --password-stdin

A decision here is the panel's decision (``ui.panel.decisions.decide``): the same roles, the same
signature (the user's own password, typed again), the same sealed Approval row, audit entry and
request to the runner, which a parked run picks up.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from ui.cli.store import DbOption, JsonOption

proposals_app = typer.Typer(
    help="The twin's proposals: list them with their decisions; approve or reject one with a signature.",
    no_args_is_help=True,
)
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (kept with the decision and signed).")]
UserOption = Annotated[str, typer.Option("--user", help="Who signs: a user whose role may approve.")]
StdinOption = Annotated[
    bool, typer.Option("--password-stdin", help="Read the signer's password from the first line of stdin.")
]


def _utc(seconds: float | None) -> str:
    if seconds is None:
        return ""
    from datetime import datetime, timezone

    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


@proposals_app.command("list")
def proposals_list(
    run: Annotated[Optional[int], typer.Option("--run", help="Only this run's proposals.")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every proposal, newest first: status, doses, who (or which policy) decided, why, when, signed."""
    from store import open_store
    from ui.panel.history import decision_records, outcome, outcome_summary

    engine = open_store(db)
    try:
        records = decision_records(engine, run)
        outcomes = {r.proposal_id: outcome_summary(outcome(engine, r.proposal_id)) for r in records}
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps([{**r.as_dict(), "outcome": outcomes[r.proposal_id]} for r in records], indent=2))
        return
    title = f"{len(records)} proposals" + ("" if run is None else f" of run {run}")
    table = Table(title=title + "; decision times are wall-clock UTC")
    for column in ("id", "run", "step", "status", "dose (uM)", "decided by", "reason", "decided (UTC)", "outcome"):
        table.add_column(column)
    for r in records:
        doses = ", ".join(f"{c} {d:g}" for c, d in r.doses_um.items())
        table.add_row(
            str(r.proposal_id),
            "" if r.run_id is None else str(r.run_id),
            "" if r.step_index is None else str(r.step_index),
            r.status,
            doses,
            r.who,
            r.reason,
            _utc(r.decided_utc_s),
            outcomes[r.proposal_id],
        )
    Console(width=max(Console().width, 160)).print(table)


def _decide(action: str, proposal_id: int, reason: str, username: str, password_stdin: bool, db: Optional[str]) -> None:
    from store import open_store
    from ui.panel.auth import sign_in
    from ui.panel.decisions import decide
    from ui.panel.errors import NotAllowed

    engine = open_store(db)
    try:
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = typer.prompt(f"Signature: the password of {username}", hide_input=True)
        who = sign_in(engine, username, password, where="cli")  # audited (cli.sign_in[_refused])
        if who is None:
            raise NotAllowed(f"the signature does not match: {username!r} is not an active user with that password")
        done = decide(engine, who, proposal_id, action, reason, password)
    finally:
        engine.dispose()
    typer.echo(
        f"proposal {done.proposal_id} {done.decision} by {who.username} (signed {done.signature[:19]}…); "
        f"request {done.request_id} sent to the runner"
    )


@proposals_app.command("approve")
def proposals_approve(
    proposal_id: Annotated[int, typer.Argument(help="The proposal (see `chiptwin proposals list`).")],
    reason: ReasonOption,
    user: UserOption,
    password_stdin: StdinOption = False,
    db: DbOption = None,
) -> None:
    """Approve a pending proposal, signed with your password; a run waiting for it goes on."""
    _decide("approve", proposal_id, reason, user, password_stdin, db)


@proposals_app.command("reject")
def proposals_reject(
    proposal_id: Annotated[int, typer.Argument(help="The proposal (see `chiptwin proposals list`).")],
    reason: ReasonOption,
    user: UserOption,
    password_stdin: StdinOption = False,
    db: DbOption = None,
) -> None:
    """Reject a pending proposal, signed with your password; nothing of it is dosed."""
    _decide("reject", proposal_id, reason, user, password_stdin, db)


def register(app: typer.Typer) -> None:
    """Add `proposals` to ``app``."""
    app.add_typer(proposals_app, name="proposals")
