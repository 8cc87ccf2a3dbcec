"""`chiptwin simulate`: predictions of a catalogue model for every row of a NONMEM-style dataset."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ui.cli.options import parse_param


def simulate(
    data: Annotated[Path, typer.Argument(help="NONMEM-style CSV (ID, TIME, AMT, EVID, CMT, RATE, II, ADDL, SS, ...).")],
    model: Annotated[str, typer.Option("--model", "-m", help="Catalogue model, e.g. oral_1cpt.")],
    param: Annotated[
        Optional[list[str]],
        typer.Option("--param", "-p", help="name=value or name=@column (repeatable); e.g. -p cl=1.1 -p f2=@bioav."),
    ] = None,
    scale: Annotated[float, typer.Option(help="Multiply the prediction (e.g. 1000 for mg/L -> ng/mL).")] = 1.0,
    observable: Annotated[str, typer.Option(help="Observable to predict (cp; warfarin_pkpd also pca).")] = "cp",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the CSV here (default: stdout).")] = None,
) -> None:
    """Simulate a NONMEM-style dataset: the input rows plus IPRED."""
    import pandas as pd

    from twin.pk import simulate_dataset

    params = dict(parse_param(p) for p in param or [])
    predicted = simulate_dataset(data, model, params, scale=scale, observable=observable)
    rows = pd.read_csv(data, dtype=str, keep_default_na=False)  # the input exactly as written
    rows["IPRED"] = predicted["IPRED"].to_numpy()
    if out is None:
        rows.to_csv(sys.stdout, index=False)
    else:
        rows.to_csv(out, index=False)
        typer.echo(f"{len(rows)} rows with IPRED written to {out}", err=True)


def register(app: typer.Typer) -> None:
    """Add the `simulate` command to ``app``."""
    app.command("simulate")(simulate)
