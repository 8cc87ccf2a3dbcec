"""The `chiptwin` command line: one entry point for technicians, scientists and scripts."""

from __future__ import annotations

import sys

import typer

from protocols import cli_protocol, cli_rig
from ui import cli_fit, cli_panel, cli_patients, cli_sbml, cli_simulate, cli_users
from ui.cli_store import audit_app, db_app
from ui.errors import USER_ERRORS, EXIT_USER_ERROR, not_built, report

app = typer.Typer(
    help="ChipTwin: organ-on-chip rigs with a calibrated computational twin in the loop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
cli_simulate.register(app)
cli_sbml.register(app)
cli_fit.register(app)
cli_patients.register(app)
cli_panel.register(app)
cli_users.register(app)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")

devices_app = typer.Typer(help="Instruments of a rig.", no_args_is_help=True)
protocol_app = typer.Typer(help="Protocol files.", no_args_is_help=True)
app.add_typer(devices_app, name="devices")
app.add_typer(protocol_app, name="protocol")

_LOOP = "issue #6, protocols and the closed loop"
_CALIBRATION = "issue #5, calibration and experiment design"

_UNBUILT = {
    # command name: (help, issue)
    "demo": ("The main job: simulated rig + closed loop + panel, ending with a summary.", _LOOP),
    "run": ("Run a protocol on a rig (survives being killed; see resume).", _LOOP),
    "resume": ("Continue a run after a crash without dosing twice.", _LOOP),
    "design": ("Rank candidate experiments by expected information gain.", _CALIBRATION),
    "dose": ("Optimise a dosing regimen for a chip or a virtual patient.", _CALIBRATION),
}


def _register_unbuilt(target: typer.Typer, name: str, help_text: str, issue: str, full_name: str) -> None:
    def command(ctx: typer.Context) -> None:
        not_built(full_name, issue)

    command.__doc__ = f"{help_text} [not built yet]"
    target.command(name, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(command)


for _name, (_help, _issue) in _UNBUILT.items():
    _register_unbuilt(app, _name, _help, _issue, _name)
cli_rig.register(app, devices_app)  # devices check, sim-rig (they touch instruments, so they live in protocols)
cli_protocol.register(protocol_app)


def main() -> None:
    try:
        app()
    except USER_ERRORS as exc:  # a command without its own handler still ends in one line
        report(exc)
        sys.exit(EXIT_USER_ERROR)


if __name__ == "__main__":
    main()
