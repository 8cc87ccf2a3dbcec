"""What the panel refuses, in words a user can act on."""

from __future__ import annotations

from twin.errors import ChipTwinError


class PanelError(ChipTwinError, ValueError):
    """A request the panel (or `chiptwin user`) cannot carry out; the message says why."""


class InvalidInput(PanelError):
    """What was typed cannot be used; the message names the field and how to write it."""


class NotAllowed(PanelError):
    """The signed-in user's role does not permit this action."""


class SessionEnded(NotAllowed):
    """The session's user was deactivated, given another role or password since signing in."""
