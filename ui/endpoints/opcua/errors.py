"""What the OPC UA endpoint refuses at start, in one line that names the fix."""

from __future__ import annotations

from twin.errors import ChipTwinError


class EndpointError(ChipTwinError, ValueError):
    """The endpoint cannot start as asked (bad URL, bad option); the message says how to fix it."""
