"""`chiptwin devices check` and `chiptwin sim-rig`: the commands that touch instruments.

They reach the rig through ``protocols.rigs`` (the ``ui`` package never imports ``instruments``),
imported inside each command so that `chiptwin --help` stays instant. ``ui.cli.app`` registers
them with ``register(app, devices_app)``; a user error (a bad rig file, an unreadable endpoints
file) is mapped to one line and exit 2 there.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from protocols.rigs import DevicesCheck, SimulatedRig

DEFAULT_ENDPOINTS = Path("sim-rig-endpoints.json")


# -- devices check --------------------------------------------------------------------------
def _table(found: DevicesCheck) -> Table:
    reports = found.reports
    table = Table(title=f"rig {found.rig.name}: {sum(r.ok for r in reports)}/{len(reports)} devices OK")
    for column in ("device", "driver", "endpoint", "state", "identity", "reading / error"):
        table.add_column(column)
    for r in reports:
        state = f"[green]{r.state}[/green]" if r.ok else f"[red]{r.state}[/red]"
        detail = r.reading_text() if r.ok else f"[red]{r.error}[/red]"
        table.add_row(r.name, r.driver, r.endpoint, state, r.identity, detail)
    return table


def devices_check(
    rig_path: Annotated[Path, typer.Option("--rig", help="The rig file (TOML).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    endpoints: Annotated[
        Optional[Path],
        typer.Option(
            "--endpoints", help="Endpoints file written by `chiptwin sim-rig`: talk to the simulated devices."
        ),
    ] = None,
    timeout_s: Annotated[float, typer.Option(help="Reply timeout per request, seconds.")] = 1.0,
) -> None:
    """Talk to every instrument of a rig: connection state, identity, a live reading. Exit 1 if any fails."""
    from protocols.rigs import check_devices

    found = check_devices(rig_path, endpoints, timeout_s)
    if as_json:
        typer.echo(
            json.dumps(
                {"rig": found.rig.name, "ok": found.all_ok, "devices": [r.to_dict() for r in found.reports]}, indent=2
            )
        )
    else:
        Console(width=max(Console().width, 140)).print(_table(found))
    raise typer.Exit(0 if found.all_ok else 1)


# -- sim-rig --------------------------------------------------------------------------------
def _write_atomically(path: Path, document: dict[str, Any]) -> None:
    """Readers never see half a file: write beside it, then rename."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(document, indent=2), encoding="utf-8")
    os.replace(temporary, path)


def _endpoint_table(sim: SimulatedRig) -> Table:
    table = Table(title=f"simulated rig {sim.rig.name}")
    table.add_column("instrument")
    table.add_column("driver")
    table.add_column("endpoint")
    for instrument in sim.rig.instruments:
        e = sim.endpoints[instrument.name]
        where = f"{e['host']}:{e['port']}" if e["kind"] == "tcp" else e["port"]
        unit = f" unit {instrument.connection.unit_id}" if instrument.connection.unit_id else ""
        table.add_row(instrument.name, instrument.driver, f"{e['kind']} {where}{unit}")
    return table


def _wait_for_stop(duration_s: float | None) -> None:
    """Until SIGINT/SIGTERM, or ``duration_s`` wall seconds."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        stop.wait(duration_s)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def sim_rig(
    rig_path: Annotated[Path, typer.Option("--rig", help="The rig file (TOML).")],
    scenario_path: Annotated[
        Optional[Path],
        typer.Option("--scenario", help="Hidden truth, noise and faults (TOML); default: model defaults, no noise."),
    ] = None,
    endpoints_file: Annotated[
        Path, typer.Option("--endpoints-file", help="Where to write the endpoints JSON (for devices check, run, demo).")
    ] = DEFAULT_ENDPOINTS,
    clock_rate: Annotated[
        float, typer.Option(help="Simulated seconds per wall second (3600 = an hour a second).")
    ] = 3600.0,
    duration_s: Annotated[
        Optional[float], typer.Option(help="Stop after this many wall-clock seconds (default: until Ctrl-C / SIGTERM).")
    ] = None,
    clock_file: Annotated[
        Optional[Path],
        typer.Option(
            "--clock-file",
            help="Share the clock through this file, so the runner holds it while it computes (docs/clock.md).",
        ),
    ] = None,
) -> None:
    """Run the simulated rig on its own: ptys for serial devices, a Modbus TCP server on 127.0.0.1."""
    from protocols.rigs import simulated_rig

    simulated = simulated_rig(rig_path, scenario_path, clock_rate, clock_file)
    console = Console(stderr=True)
    with simulated as sim:
        _write_atomically(endpoints_file, sim.endpoints_document())
        console.print(_endpoint_table(sim))
        console.print(f"endpoints written to {endpoints_file}; clock {clock_rate:g}x; Ctrl-C or SIGTERM stops")
        try:
            _wait_for_stop(duration_s)
        finally:
            endpoints_file.unlink(missing_ok=True)
        fired = list(sim.plan.log)
    for event in fired:
        console.print(f"fault at rig t={event.t_s:.0f} s: {event.fault.kind} on {event.fault.device} ({event.detail})")
    console.print(f"simulated rig {simulated.rig.name} stopped cleanly ({len(fired)} faults fired)")


def register(app: typer.Typer, devices_app: typer.Typer | None = None) -> None:
    """Add `sim-rig` to ``app`` and `check` to its `devices` group (created if not given)."""
    if devices_app is None:
        devices_app = typer.Typer(help="Instruments of a rig.", no_args_is_help=True)
        app.add_typer(devices_app, name="devices")
    devices_app.command("check")(devices_check)
    app.command("sim-rig")(sim_rig)
