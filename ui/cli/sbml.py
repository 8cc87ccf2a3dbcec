"""`chiptwin export-sbml`: a catalogue model's equations as SBML Level 3 Version 2."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ui.cli.options import parse_param


def export_sbml_command(
    model: Annotated[str, typer.Argument(help="Catalogue model, e.g. oral_1cpt or liver_chip.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write the SBML here (default: stdout).")] = None,
    param: Annotated[
        Optional[list[str]],
        typer.Option(
            "--param", "-p", help="name=value for a parameter or constant (repeatable); e.g. -p cl=4 or -p 'cl=4 L/h'."
        ),
    ] = None,
) -> None:
    """Export a model's equations to SBML L3V2 (doses and other events are not part of it)."""
    from twin.errors import InvalidValueError
    from twin.sbml import export_sbml

    values = dict(parse_param(p) for p in param or [])
    for name, value in values.items():
        if isinstance(value, str) and value.startswith("@"):
            raise InvalidValueError(f"--param {name}={value}: a dataset column means nothing here; give a value")
    text = export_sbml(model, parameters=values)
    if out is None:
        typer.echo(text, nl=False)
    else:
        try:
            out.write_text(text)
        except OSError as exc:
            raise InvalidValueError(f"cannot write {out}: {exc.strerror}") from None
        typer.echo(f"{model}: SBML L3V2 written to {out}", err=True)


def register(app: typer.Typer) -> None:
    """Add the `export-sbml` command to ``app``."""
    app.command("export-sbml")(export_sbml_command)
