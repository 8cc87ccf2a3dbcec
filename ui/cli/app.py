"""The `chiptwin` command line: one entry point for technicians, scientists and scripts.

Each command group lives in its own module of ``ui.cli`` and imports what it runs inside its
commands, so this module (and `chiptwin --help`) loads none of numpy, pandas, SQLAlchemy, ….
"""

from __future__ import annotations

import logging
from typing import Annotated, Optional

import typer

from ui.cli import (
    design,
    dose,
    export,
    fit,
    lab,
    panel,
    patient_twin,
    patients,
    petab,
    proposals,
    protocol,
    queue,
    report,
    rig,
    rig_status,
    run,
    runs,
    sbml,
    simulate,
    store,
    translate,
    trial,
    users,
)
from ui.errors import command_line

app = command_line(help="ChipTwin: organ-on-chip rigs with a calibrated computational twin in the loop.")
simulate.register(app)
sbml.register(app)
fit.register(app)
design.register(app)
petab.register(app)
dose.register(app)
patients.register(app)
patient_twin.register(app)  # patient update: learn from each level (TDM)
panel.register(app)
users.register(app)
app.add_typer(store.db_app, name="db")
app.add_typer(store.audit_app, name="audit")
rig_status.register(app)  # rig status: who holds each rig
trial.register(app)  # trial simulate, analyze, size (PROCOVA)
translate.register(app)  # chip fit → IVIVE → patient
report.register(app)  # report RUN: the study report (PDF)
export.register(app)  # export RUN: assays, doses, samples, readings, lab (CSV / Parquet)
proposals.register(app)  # proposals list, approve, reject (signed, as in the panel)
runs.register(app)  # runs list, runs show RUN

devices_app = typer.Typer(help="Instruments of a rig.", no_args_is_help=True)
protocol_app = typer.Typer(help="Protocol files.", no_args_is_help=True)
app.add_typer(devices_app, name="devices")
app.add_typer(protocol_app, name="protocol")
rig.register(app, devices_app)  # devices check, sim-rig
protocol.register(protocol_app)
run.register(app)  # run, resume, demo
queue.register(app)  # queue add, list, cancel
lab.register(app)  # lab serve, lab status


def _print_version(asked: bool) -> None:
    if not asked:
        return
    from importlib.metadata import PackageNotFoundError, version  # 30 ms: only when asked

    try:
        typer.echo(f"chiptwin {version('chiptwin')}")
    except PackageNotFoundError:  # run from a checkout that was never installed
        typer.echo("chiptwin (version unknown: not installed; run `make install`)")
    raise typer.Exit(0)


@app.callback()
def _root(
    show_version: Annotated[
        Optional[bool],
        typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_print_version),
    ] = None,
) -> None:
    """ChipTwin: organ-on-chip rigs with a calibrated computational twin in the loop."""


def _quiet_third_party_logs() -> None:
    """pymodbus logs every unanswered request at ERROR; the transport maps those failures into our
    own errors, connection states and alarms, so its lines would only repeat them to a technician."""
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


def main() -> None:
    _quiet_third_party_logs()
    app()


if __name__ == "__main__":
    main()
