"""User errors end in one line on stderr and exit code 2 — never a traceback."""

from __future__ import annotations

import functools
from typing import Callable, TypeVar

import typer

from calibration import CalibrationError
from protocols.errors import ProtocolError
from store.errors import StoreError
from twin.errors import TwinError

USER_ERRORS: tuple[type[Exception], ...] = (StoreError, TwinError, CalibrationError, ProtocolError)
EXIT_USER_ERROR = 2

F = TypeVar("F", bound=Callable)


def report(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)


def user_errors(command: F) -> F:
    """Decorate a CLI command so a user error prints its message and exits 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except USER_ERRORS as exc:
            report(exc)
            raise typer.Exit(EXIT_USER_ERROR) from None

    return wrapper  # type: ignore[return-value]
