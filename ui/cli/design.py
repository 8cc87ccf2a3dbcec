"""`chiptwin design`: rank candidate experiments by what they are expected to teach the twin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from calibration.design.rank import Proposal
    from calibration.io.record import FitRecord


def read_fit(path: Path) -> FitRecord:
    from calibration.errors import CalibrationError
    from calibration.io.record import FitRecord

    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise CalibrationError(f"{path}: no such fit file (write one with chiptwin fit … --out FIT.json)") from None
    except json.JSONDecodeError as exc:
        raise CalibrationError(f"{path}: not a JSON fit record ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(document, dict) or "theta" not in document or "model" not in document:
        raise CalibrationError(f"{path}: not a fit record (no model/theta); write one with chiptwin fit … --out")
    try:
        return FitRecord.from_dict(document)
    except TypeError as exc:
        raise CalibrationError(f"{path}: incomplete fit record ({exc})") from None


def design(
    fit: Annotated[Path, typer.Argument(help="Fit record (JSON) from chiptwin fit --out.")],
    space: Annotated[Path, typer.Option("--space", "-s", help="Design space (TOML); see docs/design-space.md.")],
    top: Annotated[int, typer.Option("--top", "-n", help="How many proposals to show.", min=1)] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the proposals as JSON.")] = False,
    discriminate: Annotated[
        Optional[Path],
        typer.Option("--discriminate", help="A rival model's fit record: rank by power to tell the two apart."),
    ] = None,
    draws: Annotated[int, typer.Option(help="Posterior draws to average over (1 = point estimate).", min=1)] = 16,
    interest: Annotated[Optional[str], typer.Option(help="Parameters whose information counts, e.g. vmax,km.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the posterior draws.")] = 0,
) -> None:
    """Rank candidate experiments by expected information gain (Bayesian D-optimal over the posterior)."""
    from calibration.design.rank import Designer
    from calibration.design.space import load_space

    record = read_fit(fit)
    rival = read_fit(discriminate) if discriminate else None
    names = [n.strip() for n in interest.split(",") if n.strip()] if interest else None
    design_space = load_space(space)
    designer = Designer(design_space, record, draws=draws, seed=seed, interest=names, rival=rival)
    ranked = designer.rank()
    shown = ranked[:top]
    if as_json:
        document = {
            "fit": str(fit),
            "model": record.model,
            "space": str(space),
            "n_candidates": len(design_space.candidates()),
            "n_distinct": len(ranked),
            "draws": draws,
            "utility_kind": shown[0].utility_kind,
            "proposals": [{"rank": k + 1, **p.to_dict()} for k, p in enumerate(shown)],
        }
        typer.echo(json.dumps(document, indent=2))
    else:
        print_proposals(shown, len(ranked), Console())


def print_proposals(proposals: list[Proposal], n_ranked: int, console: Console) -> None:
    names = list(proposals[0].parameters)
    kind = proposals[0].utility_kind
    table = Table(title=f"best {len(proposals)} of {n_ranked} experiments ({kind} utility)")
    for column in ("#", "chip", "dose µM", "schedule (h)", "sample mL", "utility"):
        table.add_column(column, justify="left" if column in ("chip", "schedule (h)") else "right")
    for name in names:
        table.add_column(f"{name} RSE %", justify="right")
    for k, p in enumerate(proposals, 1):
        c = p.candidate
        times = ", ".join(f"{t:g}" for t in c.sample_times_h)
        table.add_row(
            str(k),
            c.chip,
            f"{c.dose_um:g}",
            f"{c.schedule}: {times}",
            f"{c.sample_volume_ml:g}",
            f"{p.utility:.3f}",
            *(f"{p.parameters[n]['rse_percent']:.0f} → {p.parameters[n]['expected_rse_percent']:.0f}" for n in names),
        )
    console.print(table)
    best = proposals[0]
    for observable, band in best.predicted.items():
        values = "; ".join(
            f"{t:g} h {m:.3g} [{lo:.3g}–{hi:.3g}]"
            for t, m, lo, hi in zip(band["time_h"], band["mean"], band["p05"], band["p95"])
        )
        console.print(f"#1 predicted {observable} (mean [90 % band]): {values}")


def register(app: typer.Typer) -> None:
    app.command("design")(design)
