"""`chiptwin trial`: virtual control arms with PROCOVA (#14 item 3).

    chiptwin trial simulate TRIAL.toml [--json]
    chiptwin trial analyze DATA.csv --outcome Y --arm ARM --prognostic M [--treatment LABEL] [--json]
    chiptwin trial size --effect 4 --sd 10 --correlation 0.6 [--power 0.8] [--alpha 0.05] [--ratio 1] [--json]

numpy, scipy, statsmodels and pandas are imported inside each command so that
``chiptwin --help`` stays fast. Call ``register(app)`` to add the group.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import typer

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
trial_app = typer.Typer(
    help="Virtual control arms: simulate, analyse and size trials with PROCOVA.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(trial_app, name="trial")


def _effect_row(name: str, e) -> list[str]:
    return [name, f"{e.estimate:.4g}", f"{e.se:.4g}", f"{e.ci_low:.4g} to {e.ci_high:.4g}", f"{e.p_value:.3g}"]


@trial_app.command("simulate")
def simulate_command(
    trial_file: Annotated[Path, typer.Argument(help="Trial TOML (examples/trials/).")],
    as_json: JsonOption = False,
) -> None:
    """Many virtual trials: type-I error or power, unadjusted vs PROCOVA, and the size that keeps the power."""
    import time

    from calibration.trial import load_trial_design, procova_size_keeping_power, simulate_trials

    design = load_trial_design(trial_file)
    arms, outcome, sim = design.arms, design.outcome, design.simulation
    started = time.perf_counter()
    result = simulate_trials(
        n_treatment=arms.treatment,
        n_control=arms.control,
        effect=outcome.effect,
        sd=outcome.sd,
        correlation=design.prognostic.correlation,
        n_trials=sim.n_trials,
        seed=sim.seed,
        control_mean=outcome.control_mean,
    )
    simulate_s = time.perf_counter() - started
    rates = {name: getattr(result, name).rejection_rate(sim.alpha) for name in ("unadjusted", "procova")}
    size, size_note = None, ""
    if outcome.effect != 0:
        try:
            size = procova_size_keeping_power(
                n_treatment=arms.treatment,
                n_control=arms.control,
                effect=outcome.effect,
                sd=outcome.sd,
                correlation=design.prognostic.correlation,
                target_power=rates["unadjusted"],
                alpha=sim.alpha,
                n_trials=min(sim.n_trials, 4000),
                seed=sim.seed,
            )
        except ValueError as exc:  # power near 0 or 1: the simulation stands, the size search cannot
            size_note = f"no size search: {exc}"
    search_s = time.perf_counter() - started - simulate_s
    metric = "power" if outcome.effect != 0 else "type-I error"
    summary = {
        "trial": design.name,
        "subjects": design.subjects,
        "n_trials": sim.n_trials,
        "alpha": sim.alpha,
        "arms": {"treatment": arms.treatment, "control": arms.control},
        "metric": metric,
        "effect": outcome.effect,
        "unit": outcome.unit,
        "correlation": design.prognostic.correlation,
        "analyses": {
            name: {
                metric: rates[name],
                "mean_effect": float(getattr(result, name).effect.mean()),
                "mean_se": float(getattr(result, name).se.mean()),
            }
            for name in rates
        },
        "size_keeping_power": None
        if size is None
        else {
            "n_treatment": size.n_treatment,
            "n_control": size.n_control,
            "scale": size.scale,
            "one_minus_rho_squared": 1 - design.prognostic.correlation**2,
            "target_power": size.target_power,
        },
        "size_note": size_note,
        "simulate_wall_s": simulate_s,
        "size_search_wall_s": search_s,
    }
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    _print_simulation(summary)


def _print_simulation(s: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(
        title=f"{s['trial']} — {s['n_trials']:,} virtual trials of {s['arms']['treatment']} + "
        f"{s['arms']['control']} {s['subjects']}, ρ = {s['correlation']:g}"
    )
    for column in ("analysis", s["metric"], f"mean effect ({s['unit'] or 'outcome unit'})", "mean SE"):
        table.add_column(column)
    for name, label in (("unadjusted", "unadjusted (t-test)"), ("procova", "PROCOVA (ANCOVA on twin)")):
        a = s["analyses"][name]
        table.add_row(label, f"{a[s['metric']]:.3f}", f"{a['mean_effect']:.4g}", f"{a['mean_se']:.4g}")
    console.print(table)
    size = s["size_keeping_power"]
    if size is not None:
        console.print(
            f"PROCOVA keeps the unadjusted power ({size['target_power']:.3f}) with {size['n_treatment']} + "
            f"{size['n_control']} {s['subjects']} (control arm {size['n_control']} instead of "
            f"{s['arms']['control']}: ×{size['scale']:.2f}; 1 − ρ² = {size['one_minus_rho_squared']:.2f})"
        )
    if s["size_note"]:
        console.print(s["size_note"])
    console.print(
        f"{s['n_trials']:,} trials simulated and analysed in {s['simulate_wall_s']:.2f} s; "
        f"size search {s['size_search_wall_s']:.2f} s"
    )


@trial_app.command("analyze")
def analyze_command(
    data: Annotated[Path, typer.Argument(help="CSV with one row per subject.")],
    outcome: Annotated[str, typer.Option("--outcome", help="Column of the observed outcome.")],
    arm: Annotated[str, typer.Option("--arm", help="Column of the arm label (two values).")],
    prognostic: Annotated[str, typer.Option("--prognostic", help="Column of the twin-predicted control outcome.")],
    treatment: Annotated[
        Optional[str],
        typer.Option(
            "--treatment", help="Arm label of the treatment arm (guessed for 0/1, treatment/control, active/placebo)."
        ),
    ] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="Two-sided level; intervals are 1 − alpha.")] = 0.05,
    as_json: JsonOption = False,
) -> None:
    """A trial's effect, SE, CI and p — unadjusted and with PROCOVA — and the variance the twin removed."""
    from calibration.trial import analyze_trial, load_trial_data

    y, treated, m = load_trial_data(data, outcome=outcome, arm=arm, prognostic=prognostic, treatment=treatment)
    result = analyze_trial(y, treated, m, alpha=alpha)
    if as_json:
        out = asdict(result)
        out["variance_reduction"] = result.variance_reduction
        typer.echo(json.dumps(out, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{data} — {result.n_treatment} treated, {result.n_control} control")
    for column in ("analysis", "effect", "SE", f"{1 - alpha:.0%} CI", "p"):
        table.add_column(column)
    table.add_row(*_effect_row("unadjusted", result.unadjusted))
    table.add_row(*_effect_row("PROCOVA", result.procova))
    console = Console()
    console.print(table)
    console.print(
        f"prognostic slope {result.prognostic_slope:.4g}, within-arm correlation {result.correlation:.3f}; "
        f"variance of the effect reduced by {result.variance_reduction:.1%}"
    )


@trial_app.command("size")
def size_command(
    effect: Annotated[float, typer.Option("--effect", help="Treatment − control difference to detect.")],
    sd: Annotated[float, typer.Option("--sd", help="Outcome SD within an arm (same unit as --effect).")],
    correlation: Annotated[float, typer.Option("--correlation", help="ρ of the twin's prediction with the outcome.")],
    power: Annotated[float, typer.Option("--power", help="Target power.")] = 0.8,
    alpha: Annotated[float, typer.Option("--alpha", help="Two-sided level.")] = 0.05,
    ratio: Annotated[float, typer.Option("--ratio", help="Treatment : control allocation.")] = 1.0,
    as_json: JsonOption = False,
) -> None:
    """Arm sizes reaching the power, without and with the twin's prognostic covariate."""
    from calibration.trial import sample_size

    r = sample_size(effect=effect, sd=sd, correlation=correlation, power=power, alpha=alpha, ratio=ratio)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "unadjusted": {**asdict(r.unadjusted), "total": r.unadjusted.total},
                    "procova": {**asdict(r.procova), "total": r.procova.total},
                    "reduction": r.reduction,
                    "one_minus_rho_squared": 1 - correlation**2,
                },
                indent=2,
            )
        )
        return
    for name, sizes in (("unadjusted", r.unadjusted), ("PROCOVA", r.procova)):
        typer.echo(
            f"{name:>10}: {sizes.n_treatment} treatment + {sizes.n_control} control = {sizes.total} "
            f"(power {sizes.power:.3f})"
        )
    typer.echo(f"PROCOVA needs ×{r.reduction:.3f} the subjects (1 − ρ² = {1 - correlation**2:.3f})")
