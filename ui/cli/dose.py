"""`chiptwin dose`: the regimen (patient) or dose (chip) most likely to hit a target exposure window.

    chiptwin dose --patient P.toml --drug metoprolol --levels LEVELS.csv --target auc=0.4:0.8 \\
                  [--strengths 50,100,200] [--intervals 8,12,24] [--json]
    chiptwin dose --chip --fit FIT.json --target conc=5:15 --over 0:24 [--viability-floor 0.8] [--json]

Method and definitions: calibration/dosing/optimise.py and docs/dosing.md. An infeasible target ends
in one line that names the best candidate and what to change (exit code 2).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from calibration.dosing.optimise import DosePlan


def _numbers(text: str, option: str) -> list[float]:
    from calibration.errors import CalibrationError

    try:
        values = [float(v) for v in text.replace(":", ",").split(",") if v.strip()]
    except ValueError:
        raise CalibrationError(f"{option} {text!r}: write numbers separated by commas, e.g. 50,100,200") from None
    if not values:
        raise CalibrationError(f"{option} is empty; write numbers separated by commas")
    return values


def _cv(text: str | None) -> dict[str, float]:
    from calibration.errors import CalibrationError

    out = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        name, _, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise CalibrationError(f"--bsv {part!r}: write name=CV as a fraction, e.g. --bsv cl=0.3,v=0.2") from None
    return out


def dose(
    target: Annotated[
        str,
        typer.Option(
            "--target",
            help=(
                "Window METRIC=LOW:HIGH (or METRIC=X for 80–125 % of X). Patient: auc (AUCτ,ss mg·h/L), ctrough, "
                "cmax (steady state, mg/L). Chip: conc (time-averaged medium µM over --over), cmin, cmax."
            ),
        ),
    ],
    patient: Annotated[Optional[Path], typer.Option("--patient", help="Patient TOML (covariates, genotypes).")] = None,
    drug: Annotated[Optional[str], typer.Option("--drug", help="Drug in the library (twin/drugs).")] = None,
    levels: Annotated[
        Optional[Path],
        typer.Option(
            "--levels",
            help=(
                "The patient's measured levels: NONMEM-style CSV (ID, TIME h, AMT mg, EVID, CMT, DV mg/L) with the doses given."
            ),
        ),
    ] = None,
    strengths: Annotated[str, typer.Option(help="Doses to choose from (mg), one strength per dose.")] = "25,50,100,200",
    intervals: Annotated[str, typer.Option(help="Dosing intervals to choose from (h).")] = "8,12,24",
    route: Annotated[str, typer.Option(help="oral (oral_1cpt, F from the library) or iv (iv_1cpt).")] = "oral",
    prior_fit: Annotated[
        Optional[Path],
        typer.Option(
            "--prior-fit",
            help=(
                "Population fit record (JSON) whose θ and Ω are the prior, instead of the library's typical values and BSV."
            ),
        ),
    ] = None,
    bsv: Annotated[Optional[str], typer.Option(help="Library BSV as CV fractions, e.g. cl=0.3,v=0.2,ka=0.4.")] = None,
    error_cv: Annotated[float, typer.Option(help="Proportional residual error of the levels (fixed).")] = 0.2,
    min_margin: Annotated[
        float, typer.Option(help="Toxicity margin (chip EC50 / unbound Cmax,ss) to keep in ≥ 95 %.")
    ] = 1.0,
    chip: Annotated[
        bool, typer.Option("--chip", help="Optimise a chip dose from --fit instead of a patient regimen.")
    ] = False,
    fit: Annotated[
        Optional[Path], typer.Option("--fit", help="Chip fit record (JSON from chiptwin fit --out).")
    ] = None,
    over: Annotated[
        str, typer.Option(help="Chip: the time span START:END (h) the target applies to; the dose is given at START.")
    ] = "0:24",
    viability_floor: Annotated[float, typer.Option(help="Chip: viability at the span's end to keep in ≥ 95 %.")] = 0.8,
    doses: Annotated[
        Optional[str], typer.Option(help="Chip: candidate doses (µM); default 41 log-spaced 0.1–1000.")
    ] = None,
    medium_ml: Annotated[float, typer.Option(help="Chip: medium volume (mL).")] = 1.0,
    min_pta: Annotated[float, typer.Option(help="Lowest acceptable probability of target attainment.")] = 0.5,
    samples: Annotated[Optional[int], typer.Option(help="Posterior samples (default 2000 patient, 100 chip).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the posterior samples.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Optimise a dosing regimen for a virtual patient (MAP from their levels) or a dose for a chip, under posterior uncertainty."""
    from calibration.dosing.optimise import (
        CHIP_METRICS,
        PATIENT_METRICS,
        library_prior,
        map_posterior,
        optimise_chip_dose,
        optimise_regimen,
        parse_window,
        record_prior,
    )
    from calibration.errors import CalibrationError
    from calibration.io.datasets import load_nonmem
    from twin.drugs import load_drug
    from twin.patients import load_patient

    if chip:
        if fit is None:
            raise CalibrationError("--chip needs --fit FIT.json (a chip fit record from chiptwin fit --out)")
        window = parse_window(target, CHIP_METRICS)
        span = _numbers(over, "--over")
        if len(span) != 2:
            raise CalibrationError(f"--over {over!r}: write START:END in hours, e.g. --over 0:24")
        plan = optimise_chip_dose(
            _read_json(fit),
            window,
            (span[0], span[1]),
            viability_floor=viability_floor,
            doses_um=_numbers(doses, "--doses") if doses else None,
            constants={"V_m0": medium_ml},
            min_pta=min_pta,
            n_samples=samples or 100,
            seed=seed,
        )
    else:
        missing = [o for o, v in (("--patient", patient), ("--drug", drug), ("--levels", levels)) if v is None]
        if missing:
            raise CalibrationError(f"a patient regimen needs {', '.join(missing)} (or use --chip --fit FIT.json)")
        if route not in ("oral", "iv"):
            raise CalibrationError(f"--route {route!r}: use oral or iv")
        window = parse_window(target, {k: v[1] for k, v in PATIENT_METRICS.items()})
        the_drug = load_drug(drug)
        prior, pk = library_prior(the_drug, load_patient(patient), _cv(bsv))
        if prior_fit is not None:
            prior.update(record_prior(_read_json(prior_fit)))
        data, _ = load_nonmem(levels)
        fixed = {"f1": float(pk.f_oral[0])} if route == "oral" else {}
        posterior = map_posterior(data, prior, route=route, fixed=fixed, error_cv=error_cv)
        plan = optimise_regimen(
            posterior,
            window,
            _numbers(strengths, "--strengths"),
            _numbers(intervals, "--intervals"),
            pk=pk,
            route=route,
            ec50_mg_per_l=the_drug.ec50_mg_per_l,
            min_margin=min_margin,
            min_pta=min_pta,
            n_samples=samples or 2000,
            seed=seed,
        )
    if as_json:
        typer.echo(json.dumps(plan.to_dict(), indent=2))
    else:
        _print(plan, Console())


def _read_json(path: Path) -> dict:
    from calibration.errors import CalibrationError

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CalibrationError(f"{path}: cannot read the fit record ({exc})") from None


def _print(plan: DosePlan, console: Console, top: int = 10) -> None:
    table = Table(title=f"target {plan.target} {plan.metric_unit} — {plan.n_samples} posterior samples")
    for column in ("candidate", "PTA", "median", "90 % interval", "P(safe)"):
        table.add_column(column, justify="left" if column == "candidate" else "right")
    for c in sorted(plan.candidates, key=lambda c: -c.pta)[:top]:
        table.add_row(
            c.label(plan.unit), f"{c.pta:.0%}", f"{c.median:.3g}", f"{c.ci90[0]:.3g}–{c.ci90[1]:.3g}", f"{c.p_safe:.0%}"
        )
    console.print(table)
    for name, value in plan.posterior.items():
        prior = f" (prior median {value['prior_median']:.4g})" if "prior_median" in value else ""
        console.print(f"{name}: {value['estimate']:.4g} [{value['ci95'][0]:.4g}–{value['ci95'][1]:.4g}]{prior}")
    console.print(
        f"[bold]best: {plan.best.label(plan.unit)}[/] — PTA {plan.best.pta:.0%}, median {plan.best.median:.3g}"
    )
    for note in plan.notes:
        console.print(f"note: {note}")


def register(app: typer.Typer) -> None:
    app.command("dose")(dose)
