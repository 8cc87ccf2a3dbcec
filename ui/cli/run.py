"""`chiptwin run`, `chiptwin resume` and `chiptwin demo`: the commands that drive a rig.

They reach the rig through ``protocols.rigs`` and the runner through ``protocols.run`` (the ``ui``
package never imports ``instruments``), imported inside each command so `chiptwin --help` stays
instant; ``ui.cli.app`` registers them with ``register(app)``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ui.errors import EXIT_USER_ERROR, command_line

if TYPE_CHECKING:
    from store.lease import Holder, RigLease

DEFAULT_DEMO_DB = "chiptwin-demo.db"
PANEL_CLOCK_RATE = 3600.0  # an hour a second: people can watch the panel's plots grow
# the demo's clock is stepped (docs/clock.md): results do not depend on the rate, and the clock waits for
# the readings it needs (the fit's, a hold's) and for the interlocks' polls, so a slow bus slows it instead
NO_PANEL_CLOCK_RATE = 36000.0
TAKE_OVER_HELP = (
    "Take the rig from a holder that is gone (heartbeat expired, or its pid absent on this host); "
    "refused while it is alive; audited. Lease times: $CHIPTWIN_LEASE_EXPIRY_S (30), "
    "$CHIPTWIN_LEASE_HEARTBEAT_S (5)."
)
TakeOver = Annotated[bool, typer.Option("--take-over", help=TAKE_OVER_HELP)]
Action = Callable[[Any, Any, Any, Any, "RigLease"], dict]


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(EXIT_USER_ERROR)


def run(
    rig_path: Annotated[Path, typer.Option("--rig", help="The rig file (TOML).")],
    protocol_path: Annotated[
        Optional[Path], typer.Argument(help="The protocol file (TOML); not with --queue-entry.")
    ] = None,
    db: Annotated[
        Optional[str], typer.Option(help="Store URL or SQLite path (default $CHIPTWIN_DB / ./chiptwin.db).")
    ] = None,
    endpoints: Annotated[
        Optional[Path], typer.Option(help="Endpoints file of `chiptwin sim-rig` (its clock too).")
    ] = None,
    clock_rate: Annotated[float, typer.Option(help="Clock rate without --endpoints (1 = real time).")] = 1.0,
    take_over: TakeOver = False,
    queue_entry: Annotated[
        Optional[int],
        typer.Option("--queue-entry", help="Run this queue entry's protocol (a lab supervisor starts runs so)."),
    ] = None,
) -> None:
    """Run a protocol on a rig; prints the run id first (for `chiptwin resume RUN`)."""
    from protocols.language.api import load_rig_view, parse_protocol, read_protocol_text
    from protocols.run.runner import Runner

    if (protocol_path is None) == (queue_entry is None):
        _fail(ValueError("give a PROTOCOL file or --queue-entry ID (one of the two); fix: see `chiptwin run --help`"))
    text, name = _protocol_of(protocol_path, queue_entry, db, read_protocol_text)
    # a protocol that cannot run is refused before the lease is taken or a port opened
    parse_protocol(text, load_rig_view(rig_path), name)

    def start(rig: Any, engine: Any, devices: Any, clock: Any, lease: RigLease) -> dict:
        # the queue entry is linked in the run's own commit: a supervisor restarted after a crash
        # re-queues an entry still "starting" (it has no run), and a late runner of it is refused
        runner = Runner.create(text, rig, engine, devices, clock, filename=name, queue_entry=queue_entry)
        lease.attach_run(runner.run_id)  # before any step: a later resume knows whose lease this was
        typer.echo(f"run {runner.run_id}", err=True)
        state = runner.run()
        return {"run_id": runner.run_id, "state": state, "poll_slots": _poll_slots(engine, runner.run_id)}

    _drive(rig_path, db, endpoints, clock_rate, start, command="run", take_over=take_over)


def _protocol_of(
    path: Optional[Path], entry_id: Optional[int], db: Optional[str], read: Callable[[Path], str]
) -> tuple[str, str]:
    """The protocol's text and name: from its file, or as it was queued."""
    if path is not None:
        return read(path), path.name
    from store import open_store
    from store.repositories import queue

    engine = open_store(db)
    try:
        assert entry_id is not None
        return queue.protocol_text(engine, entry_id), queue.get(engine, entry_id).protocol_name or "queued.toml"
    finally:
        engine.dispose()


def resume(
    run_id: Annotated[int, typer.Argument(help="The run to continue.")],
    rig_path: Annotated[Path, typer.Option("--rig", help="The rig file (TOML).")],
    db: Annotated[Optional[str], typer.Option(help="Store URL or SQLite path.")] = None,
    endpoints: Annotated[Optional[Path], typer.Option(help="Endpoints file of `chiptwin sim-rig`.")] = None,
    clock_rate: Annotated[float, typer.Option(help="Clock rate without --endpoints.")] = 1.0,
    take_over: TakeOver = False,
) -> None:
    """Reconcile the run's unfinished dose intents against the pumps, then continue it.

    Refused while the run's runner is alive; its own lease is taken over once it is gone."""
    from protocols.run.runner import Runner

    def go_on(rig: Any, engine: Any, devices: Any, clock: Any, lease: RigLease) -> dict:
        outcomes, state = Runner.attach(run_id, rig, engine, devices, clock).resume()
        return {"run_id": run_id, "state": state, "reconciled": outcomes, "poll_slots": _poll_slots(engine, run_id)}

    _drive(rig_path, db, endpoints, clock_rate, go_on, command="resume", take_over=take_over, run_id=run_id)


def _poll_slots(engine: Any, run_id: int) -> dict:
    """The run's poll slots so far, in slots: stored, skipped, down (no runner), lost (store.repositories.polls)."""
    from store.repositories import polls

    return polls.ledger(engine, run_id).total.to_dict()


def _drive(
    rig_path: Path,
    db: Optional[str],
    endpoints: Optional[Path],
    clock_rate: float,
    action: Action,
    *,
    command: str,
    take_over: bool = False,
    run_id: Optional[int] = None,
) -> None:
    """Lease the rig, open it and the store, do ``action``, print its outcome as JSON; exit 0 only when done.

    The lease comes first: a second runner is refused before it opens a single port, and a
    resume before it reconciles anything.
    """
    from protocols.rigs import load_rig, open_for_run
    from store import open_store
    from store.lease import hold_rig, refuse_if_run_alive

    try:
        rig = load_rig(rig_path)
        engine = open_store(db)
        if run_id is not None:
            refuse_if_run_alive(engine, run_id)
        with hold_rig(
            engine, rig.name, command=command, run_id=run_id, take_over=take_over, adopt_run=run_id, on_lost=_lost_lease
        ) as lease:
            if lease.taken_over is not None:
                typer.echo(f"took rig {rig.name} over from {lease.taken_over.who()} (audited)", err=True)
            devices, clock = open_for_run(rig, endpoints, clock_rate)
            with devices:
                outcome = action(rig, engine, devices, clock, lease)
    except OSError as exc:  # a port or file the system refused: the same one line as our own errors
        _fail(exc)
    typer.echo(json.dumps(outcome))
    raise typer.Exit(0 if outcome["state"] == "done" else 1)


def _lost_lease(holder: Optional["Holder"]) -> None:
    """Another process took the rig (our heartbeat was silent past the expiry): stop at once.

    Exiting without touching the devices or the store is a crash the run is built to survive
    (the intent log); putting the pumps in their safe state now would stop the new holder's.
    """
    who = holder.who() if holder is not None else "nobody (the lease row was removed)"
    typer.echo(
        f"error: lost the lease on the rig to {who}; stopping at once without touching the devices — "
        "check `chiptwin rig status` before resuming",
        err=True,
    )
    os._exit(EXIT_USER_ERROR)


def demo(
    no_panel: Annotated[bool, typer.Option("--no-panel", help="Do not open the control panel.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a machine-readable summary.")] = False,
    db: Annotated[str, typer.Option(help="SQLite file for the demo's store.")] = DEFAULT_DEMO_DB,
    clock_rate: Annotated[
        Optional[float],
        typer.Option(
            min=1.0,
            help="Simulated seconds per wall second while the protocol waits (default: 3600 with the panel, "
            f"{NO_PANEL_CLOCK_RATE:g} with --no-panel); the results do not depend on it.",
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", min=0, help="Seed of the simulated rig's noise: the same seed, the same results.")
    ] = 7,
    port: Annotated[int, typer.Option("--port", help="TCP port of the control panel.")] = 8501,
    person_approves: Annotated[
        Optional[bool],
        typer.Option(
            "--person-approves-last/--policy-approves-all",
            help="Whether the last round's proposal waits for a person's signed approval (default: yes with "
            "the panel, no with --no-panel, which then runs unattended).",
        ),
    ] = None,
) -> None:
    """The main job: simulated rig + closed loop (calibrate → propose → approve → execute) + summary.

    With the panel (the default), the store is made first, the panel starts on it with a demo
    scientist and technician whose passwords are printed once, the last round's proposal waits
    for a signed approval (the panel's Proposals page, or `chiptwin proposals approve`), and after
    the summary the panel keeps serving in the foreground until Ctrl-C, which stops it. With
    --no-panel every proposal is approved by the protocol's policy bounds, so the demo runs
    unattended (CI, scripts)."""
    from protocols.demo.setup import prepare_store, run_demo
    from protocols.demo.summary import summary_tables

    console = Console(stderr=True)
    person = (not no_panel) if person_approves is None else person_approves
    prepare_store(db)  # the panel refuses a store that does not exist yet
    panel = None if no_panel else _open_panel(db, port, console)
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=as_json and not console.is_terminal,
        ) as bar:
            task = bar.add_task("closed loop", total=None)

            def progress(index: int, total: int, kind: str) -> None:
                bar.update(task, total=total, completed=index, description=f"step {index + 1}/{total}: {kind}")

            rate = clock_rate or (NO_PANEL_CLOCK_RATE if no_panel else PANEL_CLOCK_RATE)
            hint = _approval_hint(bar.console, db, no_panel)
            summary = run_demo(db, rate, progress, person_approves=person, on_alarm=hint, seed=seed)
    except BaseException:
        _stop(panel)
        raise
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
    else:
        out = Console()
        for table in summary_tables(summary):
            out.print(table)
    if panel is not None:
        _serve_until_interrupted(panel, db, port, console)
    raise typer.Exit(0 if summary["state"] == "done" else 1)


def _approval_hint(console: Console, db: str, no_panel: bool) -> Callable[[str, str, str], None]:
    """Says, when the run parks for a person, where and how to approve the waiting proposal."""

    def hear(severity: str, source: str, message: str) -> None:
        if source != "approval" or not message.startswith("waiting for approval: proposal "):
            return
        proposal_id = message.removeprefix("waiting for approval: proposal ").split(" ", 1)[0]
        where = "" if no_panel else "on the panel's Proposals page (sign in as demo-scientist), or "
        signer = "NAME (a scientist: chiptwin user add NAME --role scientist)" if no_panel else "demo-scientist"
        console.print(
            f"[bold]The run waits for a person:[/bold] {message.removeprefix('waiting for approval: ')}.\n"
            f"Approve or reject it {where}with: chiptwin proposals approve {proposal_id} "
            f'--reason "..." --user {signer} --db {db}',
            highlight=False,
        )

    return hear


def _open_panel(db: str, port: int, console: Console) -> Any:
    """`chiptwin panel --demo-users` on the demo's store; its lines (URL, sign-ins) are relayed."""
    exe = shutil.which("chiptwin") or str(Path(sys.executable).with_name("chiptwin"))
    try:
        process = subprocess.Popen(
            [exe, "panel", "--db", db, "--port", str(port), "--demo-users"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
    except OSError:
        console.print(f"open the panel with: chiptwin panel --db {db} --demo-users")
        return None
    threading.Thread(target=_relay, args=(process, console), name="panel-lines", daemon=True).start()
    return process


def _relay(process: Any, console: Console) -> None:
    for line in process.stderr:
        console.print(f"[panel] {line.rstrip()}", highlight=False, markup=False)


def _serve_until_interrupted(panel: Any, db: str, port: int, console: Console) -> None:
    if panel.poll() is not None:
        console.print(f"the panel stopped (exit {panel.returncode}); open it with: chiptwin panel --db {db}")
        return
    console.print(f"the panel serves the store {db} at http://127.0.0.1:{port} — Ctrl-C stops it and ends the demo")
    try:
        panel.wait()
    except KeyboardInterrupt:
        pass
    finally:
        _stop(panel)


def _stop(panel: Any) -> None:
    if panel is not None and panel.poll() is None:
        panel.terminate()
        try:
            panel.wait(timeout=10)
        except subprocess.TimeoutExpired:
            panel.kill()


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("resume")(resume)
    app.command("demo")(demo)


def main() -> None:
    """``python -m ui.cli.run run|resume|demo …`` (the same commands without the rest of the CLI)."""
    app = command_line()
    register(app)
    app()


if __name__ == "__main__":
    main()
