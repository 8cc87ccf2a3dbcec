"""`chiptwin fit`: fit a catalogue model to a dataset, with honest uncertainty and visible warnings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from ui.cli.fit_extras import print_uncertainty, save_plots, save_population_plots
from ui.cli.options import parse_assignments, parse_errors, parse_names

if TYPE_CHECKING:
    from calibration.io.record import FitRecord


def fit(
    data: Annotated[Path, typer.Argument(help="NONMEM-style or lab dataset (CSV); the format is detected.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Catalogue model, e.g. oral_1cpt or liver_chip.")],
    individual: Annotated[bool, typer.Option("--individual", help="One fit per subject/chip.")] = False,
    pooled: Annotated[bool, typer.Option("--pooled", help="One parameter set for all subjects/chips.")] = False,
    population: Annotated[
        bool,
        typer.Option(
            "--population",
            help="Between-subject variability (log-normal): FOCE-I for NONMEM data (the default there); "
            "iterative two-stage over batched per-chip fits for lab data.",
        ),
    ] = False,
    error: Annotated[
        str, typer.Option("--error", help="add, prop or comb; per observable: drug_medium=prop,oxygen=add.")
    ] = "prop",
    random: Annotated[
        Optional[str], typer.Option(help="Random effects, e.g. ka,cl,v (default: all estimated).")
    ] = None,
    estimate: Annotated[Optional[str], typer.Option(help="Parameters to estimate, e.g. ps,vmax,km.")] = None,
    fix: Annotated[Optional[list[str]], typer.Option(help="Fixed values, e.g. --fix kla=5 (repeatable).")] = None,
    init: Annotated[Optional[list[str]], typer.Option(help="Initial values, e.g. --init cl=4.")] = None,
    starts: Annotated[
        int,
        typer.Option(
            help="Optimiser starts: the initial values, then seeded perturbations of them; the lowest objective wins."
        ),
    ] = 1,
    scale: Annotated[float, typer.Option(help="Multiply predictions to match DV units.")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the fit record as JSON.")] = False,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Also write the fit record (JSON) here.")] = None,
    profile: Annotated[bool, typer.Option("--profile", help="Profile likelihood of flagged parameters.")] = False,
    mcmc: Annotated[int, typer.Option("--mcmc", help="Also sample the posterior with N emcee steps.")] = 0,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Save fit and profile plots (PNG) here.")] = None,
    scheduler: Annotated[
        Optional[str],
        typer.Option(help="Run the --starts on this Dask scheduler (tcp://host:8786; docs/scale-out.md)."),
    ] = None,
    workers: Annotated[
        Optional[int], typer.Option(help="Run the --starts on a LocalCluster of N processes (default: here).")
    ] = None,
) -> None:
    """Fit a model to data; warnings are printed, never buried."""
    from calibration.errors import CalibrationError
    from calibration.estimate.lab_fit import fit_lab
    from calibration.estimate.multistart import compute_on
    from calibration.estimate.nonmem_fit import fit_nonmem
    from calibration.io.datasets import detect_format
    from twin.compute import ComputePlan

    chosen = [
        name for name, flag in (("individual", individual), ("pooled", pooled), ("population", population)) if flag
    ]
    if len(chosen) > 1:
        raise CalibrationError(f"choose one of --individual, --pooled, --population (got {', '.join(chosen)})")
    method = chosen[0] if chosen else ""
    lab = detect_format(data) == "lab"
    if not chosen:
        method = "individual" if lab else "population"
    if starts < 1:
        raise CalibrationError(f"--starts {starts}: give at least 1 (1 = the initial values alone)")
    if starts > 1 and lab and method == "population":
        raise CalibrationError(
            f"--starts {starts}: a chip population fit (iterative two-stage) starts every chip from the "
            "population mean and has no start loop; fix: drop --starts, or use --pooled or --individual with --starts"
        )
    if (scheduler or workers) and starts == 1:
        where = f"--scheduler {scheduler}" if scheduler else f"--workers {workers}"
        raise CalibrationError(
            f"{where} runs the --starts elsewhere, and there is one start; fix: add --starts N (N > 1)"
        )
    if method == "population" and (profile or mcmc):
        raise CalibrationError("--profile and --mcmc work with --individual or --pooled fits")
    if method == "population" and plot and lab:
        raise CalibrationError("--plot of a population fit (VPC, η, observed vs predicted) needs NONMEM-style data")
    console = Console(stderr=True)
    plan = ComputePlan(scheduler, workers) if scheduler or workers else None
    with compute_on(plan), Progress(console=console, transient=True, disable=as_json) as bar:
        task = bar.add_task(f"fitting {model} ({method})", total=None)
        common = dict(
            estimate=parse_names(estimate),
            random=parse_names(random),
            fix=parse_assignments(fix, "--fix"),
            init=parse_assignments(init, "--init"),
            n_starts=starts,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
        if profile or mcmc or plot:
            common.update(profile=profile, mcmc=mcmc, problems=(problems := {}))
        if lab:
            record = fit_lab(data, model, method, error=parse_errors(error), **common)
        else:
            record = fit_nonmem(data, model, method, error=error, scale=scale, **common)
    if plot and method == "population":
        save_population_plots(problems, plot, error)
    elif plot:
        save_plots(problems, plot)
    if out:
        out.write_text(record.to_json())
    refuse_unconverged(record, out)
    if as_json:
        typer.echo(record.to_json())
    else:
        print_record(record, Console())
        if profile or mcmc:
            print_uncertainty(record, Console())


def print_record(record: FitRecord, console: Console) -> None:
    from ui.unit_text import pretty_unit  # pint: only when a record is printed

    table = Table(
        title=f"{record.model} — {record.method} fit ({record.n_subjects} subjects, "
        f"{record.n_observations} observations)"
    )
    for column in ("parameter", "estimate", "SE", "95 % interval", "unit", "RSE %"):
        table.add_column(column, justify="left" if column in ("parameter", "unit") else "right")
    for name, value in record.theta.items():
        ci = value.ci95
        table.add_row(
            name,
            f"{value.estimate:.5g}",
            _fmt(value.se),
            f"{ci[0]:.4g} – {ci[1]:.4g}" if ci else "—",
            pretty_unit(value.unit) if value.unit else "",
            _fmt(value.rse_percent, ".1f"),
        )
    for name, value in record.omega.items():
        table.add_row(
            f"ω² {name}",
            f"{value['variance']:.4g}",
            _fmt(value.get("se_variance")),
            "",
            "",
            f"CV {value['cv_percent']:.1f} %",
        )
    for name, value in record.sigma.items():
        table.add_row(name, f"{value:.4g}", "", "", "", "")
    console.print(table)
    console.print(
        f"−2LL {record.minus2ll:.3f} (without N·log 2π; {record.minus2ll_with_constant:.3f} with it)   "
        f"AIC {record.aic:.2f}   BIC {record.bic:.2f}   converged: {'yes' if record.converged else 'NO'}   "
        f"{record.wall_time_s:.1f} s"
    )
    for warning in record.warnings:
        console.print(f"[bold yellow]warning:[/] {warning}")


def _fmt(value, spec: str = ".4g") -> str:
    return "—" if value is None else format(value, spec)


def register(app: typer.Typer) -> None:
    app.command("fit")(fit)


def refuse_unconverged(record: FitRecord, out: Path | None) -> None:
    """A fit that did not converge has no estimates to use: say so (with the optimiser's reason), exit 2."""
    if record.converged:
        return
    reason = next((w.partition(": ")[2] for w in record.warnings if "did not converge" in w), "")
    kept = f"; the record is in {out}" if out else ""
    from calibration.errors import CalibrationError
    from calibration.estimate.failures import TRY_INSTEAD

    raise CalibrationError(
        f"the fit did not converge{f' ({reason.rstrip(chr(46))})' if reason else ''}, so its "
        f"estimates are not usable: {TRY_INSTEAD}{kept}"
    )
