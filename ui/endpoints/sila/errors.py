"""Errors of the SiLA 2 endpoint's own: a bad address, a TLS directory that cannot be used."""

from __future__ import annotations

from twin.errors import ChipTwinError


class SilaEndpointError(ChipTwinError, ValueError):
    """The server cannot start as asked; the message names the problem and the fix."""
