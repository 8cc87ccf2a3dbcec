"""`chiptwin lab serve` and `chiptwin lab status`: the lab supervisor of this machine, and the lab as the store sees it.

chiptwin lab serve --lab lab.toml [--db URL] [--opcua opc.tcp://0.0.0.0:4840] [--sila 0.0.0.0:50052]
chiptwin lab status [--json]

The supervisor itself is ``protocols.lab.supervisor`` (imported inside the commands: `chiptwin
--help` stays fast); see docs/lab.md.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

from ui.cli.store import DbOption, JsonOption

lab_app = typer.Typer(help="The lab: this machine's supervisor of rigs and runs, and the lab's status.")


@lab_app.command("serve")
def lab_serve(
    lab: Annotated[Path, typer.Option("--lab", help="The lab file (TOML): this supervisor and its rigs.")],
    db: DbOption = None,
    opcua: Annotated[
        Optional[str], typer.Option("--opcua", help="Serve OPC UA here (opc.tcp://HOST:PORT); overrides the lab file.")
    ] = None,
    sila: Annotated[
        Optional[str], typer.Option("--sila", help="Serve SiLA 2 here (HOST:PORT); overrides the lab file.")
    ] = None,
    logs: Annotated[
        Optional[Path], typer.Option("--logs", help="Folder of the runners' logs (default: logs/ beside the lab file).")
    ] = None,
) -> None:
    """Own the lab file's rigs, start their queued runs, resume runners that die; until SIGTERM/Ctrl-C."""
    from protocols.lab.lab_file import load_lab
    from protocols.lab.supervisor import Supervisor
    from store import open_store

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    spec = load_lab(lab)
    engine = open_store(db)
    supervisor = Supervisor(
        spec, engine, db=db, opcua=opcua or spec.endpoints.opcua, sila=sila or spec.endpoints.sila, log_dir=logs
    )
    try:
        supervisor.register()
        rigs = ", ".join(r.name for r in spec.rigs)
        typer.echo(f"supervisor {supervisor.name} owns rigs {rigs}; SIGTERM or Ctrl-C stops it", err=True)
        supervisor.serve()
    finally:
        engine.dispose()


@lab_app.command("status")
def lab_status(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Every supervisor (alive or gone, heartbeat age) and every rig's owner, runner and waiting entries."""
    from protocols.lab.status import lab_status as read_status
    from store import open_store

    engine = open_store(db)
    try:
        status = read_status(engine)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(status.as_dict(), indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    sups = Table(title="supervisors (heartbeat age in wall seconds)")
    for column in ("name", "host", "pid", "state", "heartbeat age (s)"):
        sups.add_column(column)
    for s in status.supervisors:
        state = "alive" if s.alive else f"gone: {s.why_gone}"
        sups.add_row(s.name, s.host, str(s.pid), state, f"{s.heartbeat_age_s:.1f}")
    rigs = Table(title="rigs")
    for column in ("rig", "supervisor", "runner", "run", "queued"):
        rigs.add_column(column)
    for r in status.rigs:
        rigs.add_row(r.rig, r.supervisor, r.runner, "" if r.run_id is None else str(r.run_id), str(r.queued))
    console = Console(width=max(Console().width, 140))
    console.print(sups)
    console.print(rigs)


def register(app: typer.Typer) -> None:
    app.add_typer(lab_app, name="lab")
