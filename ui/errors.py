"""User errors end in one line on stderr and exit code 2 — never a traceback.

Every error ChipTwin raises on purpose derives from ``ChipTwinError`` (``twin.errors``); this
module is where the command line maps them (the panel maps them in ``ui.panel.page``).
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from twin.errors import ChipTwinError

USER_ERRORS: tuple[type[Exception], ...] = (ChipTwinError,)
EXIT_USER_ERROR = 2


def report(exc: BaseException) -> None:
    typer.echo(f"error: {exc}", err=True)


class OneLineErrors(TyperGroup):
    """A command group that maps a user error, raised by any command below it, to one line and exit 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            report(exc)
            raise typer.Exit(EXIT_USER_ERROR) from None


def command_line(**settings: Any) -> typer.Typer:
    """A typer application whose commands report user errors in one line (the one place they are mapped)."""
    return typer.Typer(
        cls=OneLineErrors,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
        **settings,
    )
