"""`chiptwin protocol check FILE --rig RIG [--json]`: validate a protocol and dry-run it on the twin.

Lives in ``protocols`` (it needs the rig file, which only the protocol layer may read);
``ui.cli.app`` registers it with ``register(protocol_app)``. An invalid protocol or rig file
prints every problem (one per line, with its line number and fix) and exits 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from protocols.errors import ProtocolError
    from protocols.language.dry_run import DryRunReport
    from protocols.language.protocol import Protocol


EXIT_INVALID = 2


def check(
    file: Annotated[Path, typer.Argument(help="Protocol file (TOML); see docs/protocols.md.")],
    rig: Annotated[Path, typer.Option("--rig", help="Rig file the protocol will run on.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Validate a protocol and dry-run it on the twin."""
    from protocols.errors import ProtocolError, ProtocolFileError
    from protocols.language.api import load_protocol
    from protocols.language.dry_run import dry_run
    from protocols.language.rig_view import load_rig_view

    try:
        rig_view = load_rig_view(rig)
        protocol = load_protocol(file, rig_view)
        report = dry_run(protocol, rig_view)
    except ProtocolError as exc:
        _fail(exc, file, as_json)
    if report.problems:
        _fail(ProtocolFileError(report.problems, file.name), file, as_json)
    if as_json:
        typer.echo(
            json.dumps({"valid": True, "file": str(file), "protocol": protocol.name, **report.to_dict()}, indent=2)
        )
    else:
        _print_summary(protocol, report)


def _fail(exc: ProtocolError, file: Path, as_json: bool) -> None:
    problems = [p.to_dict() for p in getattr(exc, "problems", ())]
    if as_json:
        typer.echo(
            json.dumps({"valid": False, "file": str(file), "errors": problems or [{"message": str(exc)}]}, indent=2)
        )
    for line in str(exc).splitlines():
        typer.echo(f"error: {line}", err=True)
    raise typer.Exit(EXIT_INVALID)


def _print_summary(protocol: Protocol, report: DryRunReport) -> None:
    console = Console()
    console.print(
        f"[bold]{protocol.name}[/bold]: valid; dry run {report.duration_h:.4g} h "
        f"({len(protocol.chips)} chips, drug {protocol.drug.name})"
    )
    chips = Table(title="Chips")
    for column in ("chip", "dosed (nmol)", "sampled (uL)", "min medium (uL)", "peak (uM)", "at (h)"):
        chips.add_column(column, justify="left" if column == "chip" else "right")
    for chip in protocol.chips:
        peak, at = report.peak_concentration_um[chip]
        chips.add_row(
            chip,
            f"{report.dosed_amount_nmol[chip]:.4g}",
            f"{report.sampled_volume_ml[chip] * 1e3:.4g}",
            f"{report.min_medium_ml[chip] * 1e3:.4g}",
            f"{peak:.4g}",
            f"{at:.4g}",
        )
    console.print(chips)
    pumps = Table(title="Pumps")
    pumps.add_column("pump")
    pumps.add_column("drawn (uL)", justify="right")
    for pump, volume in report.pump_volume_ml.items():
        pumps.add_row(pump, f"{volume * 1e3:.4g}")
    console.print(pumps)
    if report.trips:
        trips = Table(title="Interlocks the twin predicts would trip")
        for column in ("interlock", "chip", "channel", "at (h)", "step (line)", "stops run"):
            trips.add_column(column)
        for t in report.trips:
            trips.add_row(
                t.interlock,
                t.chip,
                t.channel,
                f"{t.time_h:.4g}",
                f"{t.step} ({t.line})",
                "yes" if t.stops else "no (alarm)",
            )
        console.print(trips)
    else:
        console.print("No interlock is predicted to trip.")
    for text in report.holds:
        console.print(f"[yellow]hold:[/yellow] {text}")
    for text in report.assumptions:
        console.print(f"[dim]assumed: {text}[/dim]")


def register(app: typer.Typer) -> None:
    """Add `check` to the `protocol` command group ``app``."""
    app.command("check")(check)
