"""`chiptwin export-petab`, and the extras of `chiptwin fit` (--profile, --mcmc, --plot) shown and saved."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ui.cli.options import parse_assignments, parse_errors, parse_names

if TYPE_CHECKING:
    pass


def export_petab_command(
    data: Annotated[
        Path, typer.Argument(help="Lab or NONMEM-style dataset (CSV); single dose at t = 0 per chip/subject.")
    ],
    model: Annotated[str, typer.Option("--model", "-m", help="Catalogue model, e.g. liver_chip or iv_1cpt.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for problem.yaml, model.xml and the tables.")],
    estimate: Annotated[Optional[str], typer.Option(help="Parameters to estimate, e.g. vmax,km.")] = None,
    fix: Annotated[Optional[list[str]], typer.Option(help="Fixed values, e.g. --fix ps=0.5 (repeatable).")] = None,
    init: Annotated[Optional[list[str]], typer.Option(help="Nominal (start) values, e.g. --init km=20.")] = None,
    error: Annotated[Optional[str], typer.Option(help="add, prop or comb; per observable: drug_medium=prop.")] = None,
    observable: Annotated[str, typer.Option(help="NONMEM data: the model observable DV measures.")] = "cp",
    scale: Annotated[float, typer.Option(help="NONMEM data: multiply predictions to match DV units.")] = 1.0,
    lint: Annotated[bool, typer.Option("--lint/--no-lint", help="Check the export with the petab linter.")] = True,
) -> None:
    """Export a calibration problem to PEtab v1 (no events: one dose at t = 0 per chip/subject)."""
    from calibration.io.petab import export_petab, lint_petab

    yaml = export_petab(
        data,
        model,
        out,
        estimate=parse_names(estimate),
        fix=parse_assignments(fix, "--fix"),
        init=parse_assignments(init, "--init"),
        error=parse_errors(error) if error else None,
        observable=observable,
        scale=scale,
    )
    typer.echo(f"PEtab problem written: {yaml}")
    if lint:
        if not lint_petab(yaml):
            raise typer.Exit(1)
        typer.echo("petab lint: no errors")


def register(app: typer.Typer) -> None:
    app.command("export-petab")(export_petab_command)
