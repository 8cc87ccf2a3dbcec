"""`chiptwin patient update`: a patient twin that learns from each drug level (TDM) and proposes the next dose.

    chiptwin patient update P.toml --drug metoprolol --data LEVELS.csv --target auc=0.8:1.2 \\
                            [--strengths 50,100,150,200] [--interval 12] [--json]

Per level: CL's MAP estimate and 95 % interval, the predicted next trough with its 95 % band, and
(with a target) the proposed regimen. Method: calibration/dosing/tdm.py (the `chiptwin dose` machinery).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from calibration.dosing.tdm import PatientLearning

patient_app = typer.Typer(help="A patient's twin: learn from their drug levels.", no_args_is_help=True)


@patient_app.command("update")
def update(
    patient: Annotated[Path, typer.Argument(help="Patient TOML (covariates, genotypes).")],
    drug: Annotated[str, typer.Option("--drug", help="Drug in the library (twin/drugs).")],
    data: Annotated[
        Path,
        typer.Option(
            "--data", help="NONMEM-style CSV of the doses given and the levels measured (TIME h, AMT mg, DV mg/L)."
        ),
    ],
    target: Annotated[
        Optional[str],
        typer.Option(
            "--target", help="Window METRIC=LOW:HIGH: auc (AUCτ,ss mg·h/L), ctrough, cmax (steady state, mg/L)."
        ),
    ] = None,
    strengths: Annotated[str, typer.Option(help="Doses to choose from (mg).")] = "25,50,100,150,200,300",
    interval: Annotated[
        Optional[float], typer.Option(help="Dosing interval (h); default: II, or the time between the last doses.")
    ] = None,
    route: Annotated[str, typer.Option(help="oral (oral_1cpt) or iv (iv_1cpt).")] = "oral",
    error_cv: Annotated[float, typer.Option(help="Proportional residual error of the levels (fixed).")] = 0.2,
    samples: Annotated[int, typer.Option(help="Posterior draws for the bands and the proposal.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed of the posterior draws.", min=0)] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Update the patient's twin level by level: estimate, forecast band, next dose."""
    from calibration.dosing.optimise import PATIENT_METRICS, library_prior, parse_window
    from calibration.dosing.tdm import learn
    from calibration.errors import CalibrationError
    from calibration.io.datasets import load_nonmem
    from twin.drugs import load_drug
    from twin.patients import load_patient
    from ui.cli.dose import _numbers

    if route not in ("oral", "iv"):
        raise CalibrationError(f"--route {route!r}: use oral or iv")
    window = parse_window(target, {k: v[1] for k, v in PATIENT_METRICS.items()}) if target else None
    the_drug = load_drug(drug)
    prior, pk = library_prior(the_drug, load_patient(patient))
    levels, _ = load_nonmem(data)
    learning = learn(
        levels,
        prior,
        pk,
        drug=drug,
        route=route,
        target=window,
        strengths_mg=_numbers(strengths, "--strengths"),
        interval_h=interval,
        ec50_mg_per_l=the_drug.ec50_mg_per_l,
        error_cv=error_cv,
        n_samples=samples,
        seed=seed,
    )
    if as_json:
        typer.echo(json.dumps(learning.to_dict(), indent=2))
    else:
        _print(learning, Console())
    last = learning.steps[-1]
    if last.refusal:
        raise CalibrationError(last.refusal)


def _print(learning: PatientLearning, console: Console) -> None:
    r = learning.regimen
    table = Table(
        title=(
            f"{learning.drug}: the twin after each level — next trough at {r.next_dose_h:g} h "
            f"({r.dose_mg:g} mg q{r.interval_h:g}h)"
        )
    )
    columns = ["levels", "at (h)", "level (mg/L)", "CL (L/h)", "CL 95 %", "next trough (mg/L)", "95 % band"]
    if learning.target is not None:
        columns += ["proposal", "PTA"]
    for column in columns:
        table.add_column(column, justify="right")
    for s in learning.steps:
        row = [
            str(s.n_levels),
            "prior" if s.level_time_h is None else f"{s.level_time_h:g}",
            "" if s.level_mg_per_l is None else f"{s.level_mg_per_l:.3g}",
            f"{s.cl_l_per_h:.3g}",
            f"{s.cl_ci95[0]:.3g}–{s.cl_ci95[1]:.3g}",
            f"{s.next_trough_mg_per_l.median:.3g}",
            f"{s.next_trough_mg_per_l.low:.3g}–{s.next_trough_mg_per_l.high:.3g}",
        ]
        if learning.target is not None:
            row += [s.proposal or "none", "" if s.proposal_pta is None else f"{s.proposal_pta:.0%}"]
        table.add_row(*row)
    console.print(table)
    if learning.plan is not None and learning.target is not None:
        best = learning.plan.best
        console.print(
            f"[bold]next: {best.label('mg')}[/] — P({learning.target} {learning.metric_unit}) {best.pta:.0%}, "
            f"median {best.median:.3g} (90 % {best.ci90[0]:.3g}–{best.ci90[1]:.3g})"
        )
    for note in learning.notes:
        console.print(f"[dim]note: {note}[/dim]")


def register(app: typer.Typer) -> None:
    app.add_typer(patient_app, name="patient")
