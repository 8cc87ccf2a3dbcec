"""The `chiptwin` command line: one entry point for technicians, scientists and scripts."""

from __future__ import annotations

import logging
import sys

import typer

from protocols import cli_protocol, cli_rig, cli_run
from ui import (cli_design, cli_dose, cli_fit, cli_lease, cli_panel, cli_patients, cli_petab, cli_sbml, cli_simulate,
                cli_users)
from ui.cli_store import audit_app, db_app
from ui.errors import EXIT_USER_ERROR, USER_ERRORS, report

app = typer.Typer(
    help="ChipTwin: organ-on-chip rigs with a calibrated computational twin in the loop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
cli_simulate.register(app)
cli_sbml.register(app)
cli_fit.register(app)
cli_design.register(app)
cli_petab.register(app)
cli_dose.register(app)
cli_patients.register(app)
cli_panel.register(app)
cli_users.register(app)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
cli_lease.register(app)  # rig status: who holds each rig

devices_app = typer.Typer(help="Instruments of a rig.", no_args_is_help=True)
protocol_app = typer.Typer(help="Protocol files.", no_args_is_help=True)
app.add_typer(devices_app, name="devices")
app.add_typer(protocol_app, name="protocol")

cli_rig.register(app, devices_app)  # devices check, sim-rig (they touch instruments, so they live in protocols)
cli_protocol.register(protocol_app)
cli_run.register(app)  # run, resume, demo (they touch instruments, so they live in protocols)


def _quiet_third_party_logs() -> None:
    """pymodbus logs every unanswered request at ERROR; the transport maps those failures into our
    own errors, connection states and alarms, so its lines would only repeat them to a technician."""
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


def main() -> None:
    _quiet_third_party_logs()
    try:
        app()
    except USER_ERRORS as exc:  # a command without its own handler still ends in one line
        report(exc)
        sys.exit(EXIT_USER_ERROR)


if __name__ == "__main__":
    main()
