"""What the panel refuses, in words a user can act on."""

from __future__ import annotations


class PanelError(ValueError):
    """A request the panel (or `chiptwin user`) cannot carry out; the message says why."""


class NotAllowed(PanelError):
    """The signed-in user's role does not permit this action."""
