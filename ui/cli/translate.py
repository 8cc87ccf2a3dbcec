"""`chiptwin translate`: a chip fit → IVIVE → a patient's or a population's CL, Cmax, tmax, AUC.

    chiptwin translate --fit FIT.json --drug midazolam --cells-million 1 \\
        [--patient P.toml | --population N] --regimen "7.5 mg q24h x1 oral" [--fu-inc 0.8]
        [--liver-model well-stirred|dispersion] [--json]

Every factor of the chain is printed with its source (method: calibration/translate.py,
twin/translate/chain.py, docs/translate.md). numpy is imported inside the command.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import typer

_LABELS = {
    "clint_u_l_per_h": "CLint,u (hepatic, unbound)",
    "cl_l_per_h": "CL (plasma)",
    "f_oral": "F (oral)",
    "cmax_mg_per_l": "Cmax",
    "cmax_um": "Cmax",
    "tmax_h": "tmax (from first dose)",
    "auc_0_end_mg_h_per_l": "AUC (first dose to τ after the last)",
    "auc_tau_ss_mg_h_per_l": "AUCτ at steady state",
}


def register(app: typer.Typer) -> None:
    app.command("translate")(translate_command)


def translate_command(
    fit: Annotated[Path, typer.Option("--fit", help="liver_chip fit record (chiptwin fit … --json).")],
    drug: Annotated[str, typer.Option("--drug", help="Drug in the library (twin/drugs).")],
    regimen: Annotated[str, typer.Option("--regimen", help="e.g. '7.5 mg q24h x1 oral'.")],
    cells_million: Annotated[
        float, typer.Option("--cells-million", help="Cells in the fitted chip, millions (the chip's N_cells).")
    ],
    patient: Annotated[Optional[Path], typer.Option("--patient", help="Patient TOML.")] = None,
    population: Annotated[Optional[int], typer.Option("--population", help="N virtual patients.")] = None,
    fu_inc: Annotated[
        Optional[float],
        typer.Option("--fu-inc", help="Unbound fraction in the chip (default: the drug's [chip] fu_inc, else 1)."),
    ] = None,
    liver_model: Annotated[
        str,
        typer.Option("--liver-model", help="well-stirred (default) or dispersion (Roberts & Rowland 1986, DN 0.17)."),
    ] = "well-stirred",
    draws: Annotated[int, typer.Option("--draws", help="Posterior draws (patient / reference adult).")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Carry a chip's calibrated metabolism to a patient: CL, Cmax, tmax and AUC with 95 % intervals."""
    from calibration.translate import load_chip_fit, translate_fit
    from twin.drugs import load_drug
    from twin.patients import load_patient, parse_regimen
    from twin.translate import METRICS

    result = translate_fit(
        load_chip_fit(fit),
        load_drug(drug),
        parse_regimen(regimen),
        fit_label=str(fit),
        n_cells_million=cells_million,
        fu_inc=fu_inc,
        patient=None if patient is None else load_patient(patient),
        population=population,
        n_draws=draws,
        seed=seed,
        liver_model=liver_model,
    )
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "drug": result.drug,
                    "regimen": result.regimen,
                    "who": result.who,
                    "n_draws": result.n_draws,
                    "metrics": {name: {**asdict(iv), "unit": METRICS[name]} for name, iv in result.metrics.items()},
                    "factors": [asdict(f) for f in result.factors],
                    "notes": list(result.notes),
                },
                indent=2,
            )
        )
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    chain = Table(title=f"chip → {result.who}: the chain at the fit's estimate")
    for column in ("factor", "value", "unit", "source"):
        chain.add_column(column, overflow="fold")
    for f in result.factors:
        chain.add_row(f.name, "—" if f.value is None else f"{f.value:.4g}", f.unit, f.source)
    console.print(chain)
    table = Table(title=f"{result.drug} — {result.regimen} — {result.who} ({result.n_draws:,} draws)")
    for column in ("quantity", "point", "median", "95 % interval", "unit"):
        table.add_column(column)
    for name, iv in result.metrics.items():
        table.add_row(
            _LABELS[name], f"{iv.point:.4g}", f"{iv.median:.4g}", f"{iv.low:.4g} – {iv.high:.4g}", METRICS[name]
        )
    console.print(table)
    for note in result.notes:
        console.print(f"note: {note}")
