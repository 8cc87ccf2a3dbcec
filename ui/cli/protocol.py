"""`chiptwin protocol check FILE --rig RIG [--json]`: validate a protocol and dry-run it on the twin.

`--virtual-chips N [--seed S] [--fit FIT.json] [--between-chip vmax=0.3,medium=0.05]` repeats the
dry run over N virtual copies of each chip (protocols/language/virtual_chips.py): the probability
that each interlock trips, that a dose exceeds the chip's limit, that the medium runs out, and the
5/50/95 % spread of each readout.

Lives in ``protocols`` (it needs the rig file, which only the protocol layer may read);
``ui.cli.app`` registers it with ``register(protocol_app)``. An invalid protocol or rig file
prints every problem (one per line, with its line number and fix) and exits 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from protocols.errors import ProtocolError
    from protocols.language.dry_run import DryRunReport
    from protocols.language.protocol import Protocol
    from protocols.language.virtual_chips import VirtualChipsReport


EXIT_INVALID = 2


def check(
    file: Annotated[Path, typer.Argument(help="Protocol file (TOML); see docs/protocols.md.")],
    rig: Annotated[Path, typer.Option("--rig", help="Rig file the protocol will run on.")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    virtual_chips: Annotated[
        Optional[int],
        typer.Option(
            "--virtual-chips",
            help="Also run N virtual copies of each chip (posterior or prior draws plus between-chip variability).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the virtual chips.", min=0)] = 0,
    fit: Annotated[
        Optional[Path], typer.Option("--fit", help="Chip fit record (JSON) whose estimates and intervals to draw from.")
    ] = None,
    between_chip: Annotated[
        Optional[str],
        typer.Option(
            "--between-chip",
            help="Between-chip CVs (fractions) overriding the defaults, e.g. vmax=0.3,ocr=0.2,medium=0.05.",
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(help="Processes for the virtual chips (2 halves the wall time on an idle 2-core machine).")
    ] = 1,
    grid_min: Annotated[
        float,
        typer.Option(
            "--grid-min", help="Virtual chips: minutes between predicted readings (interlocks are judged on them)."
        ),
    ] = 5.0,
) -> None:
    """Validate a protocol and dry-run it on the twin (and on N virtual chips)."""
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
    virtual = None
    stray = [o for o, v in (("--fit", fit), ("--between-chip", between_chip)) if v is not None]
    stray += [
        o for o, v, d in (("--seed", seed, 0), ("--workers", workers, 1), ("--grid-min", grid_min, 5.0)) if v != d
    ]
    if virtual_chips is None and stray:
        from protocols.language.virtual_chips import VirtualChipsError

        raise VirtualChipsError(f"{', '.join(stray)} apply to virtual chips; add --virtual-chips N (e.g. 1000)")
    if virtual_chips is not None:
        virtual = _virtual(protocol, rig_view, virtual_chips, seed, fit, between_chip, workers, grid_min)
    if as_json:
        document = {"valid": True, "file": str(file), "protocol": protocol.name, **report.to_dict()}
        if virtual is not None:
            document["virtual_chips"] = virtual.to_dict()
        typer.echo(json.dumps(document, indent=2))
    else:
        _print_summary(protocol, report)
        if virtual is not None:
            from ui.cli.protocol_virtual import print_virtual

            print_virtual(virtual, Console())


def _virtual(
    protocol,
    rig_view,
    n: int,
    seed: int,
    fit: Path | None,
    between_chip: str | None,
    workers: int,
    grid_min: float,
) -> VirtualChipsReport:
    from protocols.language.virtual_chips import VirtualChipsError, batched, pooled, virtual_chips
    from ui.cli.design import read_fit

    cv = {}
    for part in filter(None, (p.strip() for p in (between_chip or "").split(","))):
        name, _, value = part.partition("=")
        try:
            cv[name.strip()] = float(value)
        except ValueError:
            raise VirtualChipsError(
                f"--between-chip {part!r}: write name=CV as a fraction, e.g. vmax=0.3,medium=0.05"
            ) from None
    if not 1 <= workers <= 64:
        raise VirtualChipsError(f"--workers {workers}: give between 1 and 64 processes")
    if not 0.1 <= grid_min <= 60:  # NaN fails too
        raise VirtualChipsError(f"--grid-min {grid_min}: give between 0.1 and 60 minutes")
    record = read_fit(fit) if fit is not None else None
    simulator = batched if workers == 1 else pooled(workers)
    return virtual_chips(
        protocol, rig_view, n, seed=seed, fit=record, between_chip_cv=cv, simulator=simulator, grid_h=grid_min / 60
    )


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
