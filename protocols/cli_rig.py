"""`chiptwin devices check` and `chiptwin sim-rig`: the commands that touch instruments.

They live in ``protocols`` because the ``ui`` package never imports ``instruments``
(import-linter contract); ``ui.cli`` registers them with ``register(app, devices_app)``.
User errors (a bad rig file, an unreadable endpoints file) print one line and exit 2.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import threading
from pathlib import Path
from typing import Annotated, Any, Callable, Optional, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from instruments.clock import AcceleratedClock
from instruments.connection import RetryPolicy
from instruments.errors import InstrumentError
from instruments.rig import Rig, endpoints_resolver, load_rig, open_rig
from instruments.rig_factory import rig_file_resolver
from instruments.rig_health import DeviceReport, check_rig
from instruments.sim.rig import SimulatedRig
from instruments.sim.scenario import Scenario, load_scenario

EXIT_USER_ERROR = 2
DEFAULT_ENDPOINTS = Path("sim-rig-endpoints.json")
F = TypeVar("F", bound=Callable[..., Any])


def _user_errors(command: F) -> F:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except InstrumentError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_USER_ERROR) from None
    return wrapper  # type: ignore[return-value]


def _read_endpoints(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InstrumentError(f"cannot read endpoints file {path} ({exc}); fix: start `chiptwin sim-rig "
                              "--endpoints-file` first and pass the file it writes") from None


# -- devices check --------------------------------------------------------------------------
def _table(rig: Rig, reports: list[DeviceReport]) -> Table:
    table = Table(title=f"rig {rig.name}: {sum(r.ok for r in reports)}/{len(reports)} devices OK")
    for column in ("device", "driver", "endpoint", "state", "identity", "reading / error"):
        table.add_column(column)
    for r in reports:
        state = f"[green]{r.state}[/green]" if r.ok else f"[red]{r.state}[/red]"
        detail = r.reading_text() if r.ok else f"[red]{r.error}[/red]"
        table.add_row(r.name, r.driver, r.endpoint, state, r.identity, detail)
    return table


@_user_errors
def devices_check(
    rig_path: Annotated[Path, typer.Option("--rig", help="The rig file (TOML).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    endpoints: Annotated[Optional[Path], typer.Option(
        "--endpoints", help="Endpoints file written by `chiptwin sim-rig`: talk to the simulated devices.")] = None,
    timeout_s: Annotated[float, typer.Option(help="Reply timeout per request, seconds.")] = 1.0,
) -> None:
    """Talk to every instrument of a rig: connection state, identity, a live reading. Exit 1 if any fails."""
    rig = load_rig(rig_path)
    resolver = endpoints_resolver(_read_endpoints(endpoints)) if endpoints else rig_file_resolver
    policy = RetryPolicy(timeout_s=timeout_s, retries=1, backoff_initial_s=0.05, backoff_max_s=0.5)
    with open_rig(rig, resolver, policy) as devices:
        reports = check_rig({i.name: i.driver for i in rig.instruments}, devices)
    all_ok = all(r.ok for r in reports)
    if as_json:
        typer.echo(json.dumps({"rig": rig.name, "ok": all_ok, "devices": [r.to_dict() for r in reports]}, indent=2))
    else:
        Console(width=max(Console().width, 140)).print(_table(rig, reports))
    raise typer.Exit(0 if all_ok else 1)


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


@_user_errors
def sim_rig(
    rig_path: Annotated[Path, typer.Option("--rig", help="The rig file (TOML).")],
    scenario_path: Annotated[Optional[Path], typer.Option(
        "--scenario", help="Hidden truth, noise and faults (TOML); default: model defaults, no noise.")] = None,
    endpoints_file: Annotated[Path, typer.Option(
        "--endpoints-file", help="Where to write the endpoints JSON (for devices check, run, demo).")]
    = DEFAULT_ENDPOINTS,
    clock_rate: Annotated[float, typer.Option(help="Simulated seconds per wall second (3600 = an hour a second).")]
    = 3600.0,
    duration_s: Annotated[Optional[float], typer.Option(
        help="Stop after this many wall-clock seconds (default: until Ctrl-C / SIGTERM).")] = None,
) -> None:
    """Run the simulated rig on its own: ptys for serial devices, a Modbus TCP server on 127.0.0.1."""
    rig = load_rig(rig_path)
    names = {"chips": [c.name for c in rig.chips], "instruments": [i.name for i in rig.instruments]}
    scenario = load_scenario(scenario_path, **names) if scenario_path else Scenario()
    if clock_rate <= 0:
        raise InstrumentError(f"--clock-rate {clock_rate}: must be positive; fix: e.g. 1 (real time) or 3600")
    console = Console(stderr=True)
    with SimulatedRig(rig, scenario, AcceleratedClock.starting_now(clock_rate)) as sim:
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
    console.print(f"simulated rig {rig.name} stopped cleanly ({len(fired)} faults fired)")


def register(app: typer.Typer, devices_app: typer.Typer | None = None) -> None:
    """Add `sim-rig` to ``app`` and `check` to its `devices` group (created if not given)."""
    if devices_app is None:
        devices_app = typer.Typer(help="Instruments of a rig.", no_args_is_help=True)
        app.add_typer(devices_app, name="devices")
    devices_app.command("check")(devices_check)
    app.command("sim-rig")(sim_rig)
