"""`chiptwin predict` and `chiptwin population`: virtual patients from the drug library.

    chiptwin predict --patient P.toml --drug metoprolol --regimen "100 mg q12h x14 oral" --target-auc 2:4
    chiptwin population --drug metoprolol --n 10000 --regimen "100 mg q12h x14 oral" [--dask-scheduler tcp://…]

Call ``register(app)`` to add both commands to a Typer app. Progress goes to stderr, so
``--json`` output on stdout stays machine-readable.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

if TYPE_CHECKING:
    from twin.patients import Prediction, Target
    from twin.patients.runner import PopulationSummary


DrugOption = Annotated[str, typer.Option("--drug", help="Drug name in the library (twin/drugs/*.toml).")]
RegimenOption = Annotated[str, typer.Option("--regimen", help="e.g. '100 mg q12h x14 oral' (or iv).")]
AucOption = Annotated[
    Optional[str],
    typer.Option(
        "--target-auc", help="Steady-state AUC over a dosing interval, mg·h/L: LOW:HIGH, or X for 80–125 % of X."
    ),
]
TroughOption = Annotated[
    Optional[str], typer.Option("--target-trough", help="Steady-state trough, mg/L: LOW:HIGH, or X for 80–125 % of X.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _target(target_auc: str | None, target_trough: str | None) -> Target | None:
    from twin.patients import TargetError, parse_target

    if target_auc and target_trough:
        raise TargetError("give --target-auc or --target-trough, not both")
    if target_auc:
        return parse_target("auc_tau_ss", target_auc)
    return parse_target("ctrough_ss", target_trough) if target_trough else None


def _strengths(text: str | None) -> list[float] | None:
    from twin.patients import TargetError

    if not text:
        return None
    try:
        return [float(s) for s in text.split(",")]
    except ValueError:
        raise TargetError(f"cannot read strengths {text!r}; write mg values like 25,50,100") from None


def _prediction_json(prediction: Prediction) -> dict:
    out = {
        "drug": prediction.drug,
        "regimen": str(prediction.regimen),
        "values": {name: {"value": value, "unit": unit} for name, (value, unit) in prediction.table().items()},
        "assumptions": list(prediction.assumptions),
    }
    if prediction.recommendation is not None and prediction.target is not None:
        out["target"] = {
            "metric": prediction.target.metric,
            "low": prediction.target.low,
            "high": prediction.target.high,
        }
        out["recommendation"] = prediction.recommendation.__dict__
    return out


def _print_prediction(prediction: Prediction, console: Console) -> None:
    table = Table(title=f"{prediction.drug} — {prediction.regimen}")
    for column in ("quantity", "value", "unit"):
        table.add_column(column)
    for name, (value, unit) in prediction.table().items():
        table.add_row(name, f"{value:.4g}", unit)
    console.print(table)
    for assumption in prediction.assumptions:
        console.print(f"note: {assumption}")
    rec, target = prediction.recommendation, prediction.target
    if rec is not None and target is not None:
        where = "inside" if rec.in_window else "OUTSIDE"
        console.print(
            f"recommended dose: {rec.dose_mg:g} mg (exact {rec.exact_dose_mg:.4g} mg) → {target.metric} "
            f"{rec.predicted:.4g}, {where} the window {target.low:g}–{target.high:g}"
        )


def predict_command(
    patient: Annotated[str, typer.Option("--patient", help="Patient TOML file (see twin/patients/patient_file.py).")],
    drug: DrugOption,
    regimen: RegimenOption,
    target_auc: AucOption = None,
    target_trough: TroughOption = None,
    strengths: Annotated[Optional[str], typer.Option("--strengths", help="Available strengths, mg: 25,50,100.")] = None,
    as_json: JsonOption = False,
) -> None:
    """A virtual patient's exposure to a regimen, and the dose that centres a target window."""
    from twin.drugs import load_drug
    from twin.patients import load_patient, parse_regimen, predict

    prediction = predict(
        load_drug(drug),
        load_patient(patient),
        parse_regimen(regimen),
        _target(target_auc, target_trough),
        _strengths(strengths),
    )
    if as_json:
        typer.echo(json.dumps(_prediction_json(prediction), indent=2))
    else:
        _print_prediction(prediction, Console())


def _print_population(summary: PopulationSummary, console: Console) -> None:
    table = Table(title=f"{summary.drug} — {summary.regimen} — {summary.n:,} virtual patients (seed {summary.seed})")
    for column in ("metric", "p5", "median", "p95", "mean"):
        table.add_column(column)
    for name, s in sorted(summary.accumulator.summaries.items()):
        table.add_row(name, *(f"{s.quantile(q):.4g}" for q in (0.05, 0.5, 0.95)), f"{s.mean:.4g}")
    console.print(table)
    if summary.target is not None:
        console.print(
            f"probability of target attainment ({summary.target.metric} {summary.target.low:g}–"
            f"{summary.target.high:g}): {summary.pta:.1%}"
        )
    if "toxicity_margin" in summary.accumulator.summaries:
        console.print(f"toxicity margin < 1 in {summary.accumulator.margin_below_1 / summary.n:.2%} of patients")


def population_command(
    drug: DrugOption,
    regimen: RegimenOption,
    n: Annotated[int, typer.Option("--n", help="Number of virtual patients.")] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same summary).")] = 0,
    target_auc: AucOption = None,
    target_trough: TroughOption = None,
    dask_scheduler: Annotated[
        Optional[str],
        typer.Option(
            "--scheduler",
            "--dask-scheduler",
            help="Run on this Dask scheduler (tcp://host:8786; docs/scale-out.md) instead of this machine.",
        ),
    ] = None,
    workers: Annotated[
        Optional[int],
        typer.Option("--workers", help="A LocalCluster of N processes (default: this process only)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Exposure, probability of target attainment and toxicity margin across N virtual patients."""
    from twin.drugs import load_drug
    from twin.patients import parse_regimen
    from twin.patients.runner import run_population

    target = _target(target_auc, target_trough)
    drug_entry, parsed = load_drug(drug), parse_regimen(regimen)
    columns = (TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("patients", total=n)
        summary = run_population(
            drug_entry,
            parsed,
            n,
            seed=seed,
            target=target,
            dask=dask_scheduler,
            max_workers=workers,
            progress=lambda done, _total: bar.update(task, completed=done),
        )
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        _print_population(summary, Console())


def register(app: typer.Typer) -> None:
    """Add `predict` and `population` to ``app``."""
    app.command("predict")(predict_command)
    app.command("population")(population_command)
