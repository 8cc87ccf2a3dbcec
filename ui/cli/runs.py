"""`chiptwin runs …`: the protocol runs in the lab record, and where each one is.

chiptwin runs list [--json]          # every run: rig, state, started, ended, clock rate
chiptwin runs show 1 [--json]        # state, current and next step (from the checkpoint), a timeline of steps,
                                     # and its poll slots: stored, skipped, down, lost (store.repositories.polls)

Start and end are wall-clock dates (UTC): when the run really started and ended. Step times are on
the run's clock, shown as hours since the run started — for an accelerated (simulated) run that is
what they mean (its own clock runs days ahead of the wall clock; ui.run_clock).
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from ui.cli.store import DbOption, JsonOption
from ui.run_clock import date_text, run_time_text

runs_app = typer.Typer(
    help="Protocol runs: list them; show one's state, current step and timeline.", no_args_is_help=True
)
TIMELINE_STEPS = 40  # the newest steps a table shows (--json has every one)


def _wall(run_s: float | None, wall_s: float | None, clock_rate: float) -> float | None:
    """The wall-clock time of a run's start or end (a run stored before wall times: its own time if real)."""
    if wall_s is not None:
        return wall_s
    return run_s if clock_rate == 1.0 else None


def _length(started_s: float | None, ended_s: float | None) -> str:
    """How much run time (on the run's clock) a run covered."""
    if started_s is None or ended_s is None:
        return ""
    return run_time_text(ended_s - started_s).lstrip("+")


@runs_app.command("list")
def runs_list(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Every run, newest first: its rig, state, start and end, and clock rate (3600 = an hour a second)."""
    from store import open_store
    from store.repositories import runs

    engine = open_store(db)
    try:
        rows = [
            {
                "run_id": r.id,
                "rig": r.rig,
                "state": str(r.state),
                "started_utc_s": r.started_utc_s,  # on the run's clock
                "ended_utc_s": r.ended_utc_s,
                "started_wall_utc_s": _wall(r.started_utc_s, r.started_wall_utc_s, r.clock_rate),
                "ended_wall_utc_s": _wall(r.ended_utc_s, r.ended_wall_utc_s, r.clock_rate),
                "clock_rate": r.clock_rate,
            }
            for r in runs.listing(engine)
        ]
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{len(rows)} runs (started and ended: wall clock; run time: on the run's own clock)")
    for column in ("run", "rig", "state", "started", "ended", "run time", "clock rate"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            str(r["run_id"]),
            r["rig"],
            r["state"],
            date_text(r["started_wall_utc_s"]) if r["started_wall_utc_s"] is not None else "",
            date_text(r["ended_wall_utc_s"]) if r["ended_wall_utc_s"] is not None else "",
            _length(r["started_utc_s"], r["ended_utc_s"]),
            f"{r['clock_rate']:g}×",
        )
    Console(width=max(Console().width, 120)).print(table)


def run_view(engine: Any, run_id: int) -> dict[str, Any]:
    """A run's state, checkpoint, current and next step, and its steps so far (JSON-ready)."""
    from protocols.errors import ProtocolError
    from protocols.language.api import expand, parse_protocol
    from protocols.run.settle import undecided_doses
    from store.repositories import polls, proposals, runs
    from store.states import ProposalStatus

    row = runs.get(engine, run_id)
    pending = [p.id for p in proposals.of_run(engine, run_id) if p.status == ProposalStatus.PENDING]
    steps = runs.steps(engine, run_id)
    try:
        kinds = [s.kind for s in expand(parse_protocol(row.protocol_text, None, f"run {run_id}").steps)]
    except ProtocolError:  # an older language version: the steps already started still tell the story
        kinds = []
    point = json.loads(row.checkpoint_json or "{}")
    at = int(point.get("step", 0))
    total = len(kinds) or None
    t0 = row.started_utc_s
    finished = total is not None and at >= total

    def step_name(index: int) -> str | None:
        return kinds[index] if 0 <= index < len(kinds) else None

    return {
        "run_id": run_id,
        "state": row.state,
        "protocol_sha256": row.protocol_sha256,
        "clock_rate": row.clock_rate,
        "started_utc_s": row.started_utc_s,  # on the run's clock
        "ended_utc_s": row.ended_utc_s,
        "started_wall_utc_s": _wall(row.started_utc_s, row.started_wall_utc_s, row.clock_rate),
        "ended_wall_utc_s": _wall(row.ended_utc_s, row.ended_wall_utc_s, row.clock_rate),
        "steps_total": total,
        "current_step": None if finished else {"index": at, "kind": step_name(at)},
        "next_step": None if finished or step_name(at + 1) is None else {"index": at + 1, "kind": step_name(at + 1)},
        "proposals_pending": pending,  # what a parked approve step waits for
        "doses_undecided": [
            {"key": d.idempotency_key, "requested_ul": d.requested_amount, "why": d.error}
            for d in undecided_doses(engine, run_id)
        ],  # what a parked dose step waits for
        # every poll slot of the run's channels: stored, skipped (and why), down (no runner), lost
        "poll_slots": polls.ledger(engine, run_id).to_dict(),
        "timeline": [
            {
                "index": s.index,
                "kind": s.kind,
                "state": s.state,
                "start_h": None if s.started_utc_s is None or t0 is None else (s.started_utc_s - t0) / 3600.0,
                "end_h": None if s.ended_utc_s is None or t0 is None else (s.ended_utc_s - t0) / 3600.0,
            }
            for s in steps
        ],
    }


def _slots_line(slots: dict[str, Any]) -> str:
    """The run's poll slots in one line, in slots (store.repositories.polls)."""
    t = slots["total"]
    why = ", ".join(f"{reason} {n}" for reason, n in t["skipped_by_reason"].items())
    return (
        f"poll slots ({len(slots['channels'])} channels, {slots['sessions']} runner sessions): "
        f"{t['stored']} of {t['expected']} slots stored, {t['skipped']} skipped{f' ({why})' if why else ''}, "
        f"{t['down']} down (no runner), {t['pending']} pending, {t['lost']} lost"
    )


@runs_app.command("show")
def runs_show(
    run_id: Annotated[int, typer.Argument(help="The run (see `chiptwin runs list`).")],
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """A run's state, its current and next step (from the checkpoint), and a timeline of its steps."""
    from store import open_store

    engine = open_store(db)
    try:
        view = run_view(engine, run_id)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(view, indent=2))
        return
    out = Console(width=max(Console().width, 100))
    total = view["steps_total"] or "?"
    current, following = view["current_step"], view["next_step"]
    out.print(
        f"run {run_id}: {view['state']} (clock {view['clock_rate']:g}×, protocol sha256 {view['protocol_sha256'][:12]}…)"
    )
    out.print(
        f"started {date_text(view['started_wall_utc_s'])} · ended {date_text(view['ended_wall_utc_s'])} (wall clock)"
        + (
            f" · run time {_length(view['started_utc_s'], view['ended_utc_s'])}"
            if view["ended_utc_s"] is not None and view["started_utc_s"] is not None
            else ""
        )
    )
    out.print(
        "current step: "
        + (
            "none: every step is done"
            if current is None
            else f"{current['index'] + 1}/{total} {current['kind'] or '?'}"
        )
        + ("" if following is None else f" · next: {following['index'] + 1}/{total} {following['kind']}")
    )
    for proposal_id in view["proposals_pending"]:
        out.print(
            f"proposal {proposal_id} waits for a decision: chiptwin proposals approve {proposal_id} "
            '--reason "..." --user NAME (or reject)',
            highlight=False,
        )
    for dose in view["doses_undecided"]:
        out.print(
            f"dose {dose['key']} ({dose['requested_ul']:g} µL asked) waits for a person: {dose['why']}. "
            f"Check the chip and the syringe, then: chiptwin runs settle {run_id} {dose['key']} "
            '--dispensed-ul X (or --not-dosed) --reason "..." --user NAME',
            highlight=False,
        )
    if view["poll_slots"]["sessions"]:
        out.print(_slots_line(view["poll_slots"]), highlight=False)
    timeline = view["timeline"][-TIMELINE_STEPS:]
    table = Table(title=f"steps started: {len(view['timeline'])} (times in hours since the run started)")
    for column in ("step", "kind", "state", "start (h)", "end (h)"):
        table.add_column(column)
    for s in timeline:
        table.add_row(
            str(s["index"] + 1),
            s["kind"],
            s["state"],
            "" if s["start_h"] is None else f"{s['start_h']:.2f}",
            "" if s["end_h"] is None else f"{s['end_h']:.2f}",
        )
    out.print(table)


@runs_app.command("settle")
def runs_settle(
    run_id: Annotated[int, typer.Argument(help="The parked run.")],
    key: Annotated[str, typer.Argument(help="The dose waiting for a person (see `chiptwin runs show RUN`).")],
    reason: Annotated[str, typer.Option("--reason", help="What you checked (kept with the record, signed).")],
    user: Annotated[str, typer.Option("--user", help="Who signs: a user whose role may control runs.")],
    dispensed_ul: Annotated[
        Optional[float], typer.Option("--dispensed-ul", help="The volume that went into the chip, µL.")
    ] = None,
    not_dosed: Annotated[bool, typer.Option("--not-dosed", help="Nothing went in: resume doses again.")] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the signer's password from the first line of stdin.")
    ] = False,
    db: DbOption = None,
) -> None:
    """Record what a person found for a dose the pump could not tell (signed); then `chiptwin resume` goes on."""
    from protocols.errors import ProtocolError
    from protocols.run.settle import settle_dose
    from store import open_store
    from ui.panel.auth import require, sign_in
    from ui.panel.errors import NotAllowed

    if (dispensed_ul is None) == (not not_dosed):
        raise ProtocolError("say what went in: --dispensed-ul X (µL), or --not-dosed")
    engine = open_store(db)
    try:
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = typer.prompt(f"Signature: the password of {user}", hide_input=True)
        who = sign_in(engine, user, password, where="cli")  # audited (cli.sign_in[_refused])
        if who is None:
            raise NotAllowed(f"the signature does not match: {user!r} is not an active user with that password")
        require(engine, who, "control")
        done = settle_dose(engine, run_id, key, dispensed_ul=dispensed_ul, actor=who.username, reason=reason)
    finally:
        engine.dispose()
    what = "not dosed (resume doses again)" if done.ledger_ul is None else f"{done.ledger_ul:g} µL into the chip"
    typer.echo(f"dose {done.key} settled by {who.username}: {what}; continue with: chiptwin resume {run_id} --rig …")


def register(app: typer.Typer) -> None:
    """Add `runs` to ``app``."""
    app.add_typer(runs_app, name="runs")
