"""`chiptwin export-petab`, and the extras of `chiptwin fit` (--profile, --mcmc, --plot) shown and saved."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.console import Console

from calibration.petab_io import export_petab, lint_petab
from calibration.plots import plot_fit_band, plot_profile
from calibration.profile import Profile
from calibration.record import FitRecord
from ui.cli_fit import parse_assignments, parse_errors, parse_names
from ui.errors import user_errors


@user_errors
def export_petab_command(
    data: Annotated[Path, typer.Argument(help="Lab or NONMEM-style dataset (CSV); single dose at t = 0 per chip/subject.")],
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
    yaml = export_petab(data, model, out, estimate=parse_names(estimate), fix=parse_assignments(fix, "--fix"),
                        init=parse_assignments(init, "--init"), error=parse_errors(error) if error else None,
                        observable=observable, scale=scale)
    typer.echo(f"PEtab problem written: {yaml}")
    if lint:
        if not lint_petab(yaml):
            raise typer.Exit(1)
        typer.echo("petab lint: no errors")


def save_plots(problems: dict, directory: Path) -> list[Path]:
    """fit_<key>.png (data, prediction, 90 % band) and profile_<key>_<name>.png for each fitted problem."""
    paths = []
    for key, (problem, record) in problems.items():
        paths.append(plot_fit_band(problem, record, directory / f"fit_{key}.png"))
        for name, doc in record.data_selection.get("profiles", {}).items():
            profile = Profile(name, doc["estimate"], _array(doc["values"]), _array(doc["delta_minus2ll"]),
                              doc["ci95"][0], doc["ci95"][1])
            paths.append(plot_profile(profile, directory / f"profile_{key}_{name}.png"))
    return paths


def _array(values) -> np.ndarray:
    return np.asarray(values, dtype=float)


def print_uncertainty(record: FitRecord, console: Console) -> None:
    records = {"": record} | {k: FitRecord.from_dict(v) for k, v in record.data_selection.get("chips", {}).items()}
    for key, rec in records.items():
        prefix = f"chip {key}: " if key else ""
        for name, doc in rec.data_selection.get("profiles", {}).items():
            low, high = (("open" if v is None else f"{v:.4g}") for v in doc["ci95"])
            console.print(f"{prefix}profile-likelihood 95 % interval of {name}: {low} – {high}")
        mcmc = rec.data_selection.get("mcmc")
        if mcmc:
            console.print(f"{prefix}MCMC: {mcmc['n_walkers']} walkers × {mcmc['n_steps']} steps, acceptance "
                          f"{mcmc['acceptance_fraction']:.2f}")
            for name, s in mcmc["summary"].items():
                console.print(f"  {name}: median {s['median']:.4g}, 95 % {s['ci95'][0]:.4g} – {s['ci95'][1]:.4g}")


def register(app: typer.Typer) -> None:
    app.command("export-petab")(export_petab_command)
