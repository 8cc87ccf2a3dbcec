"""What a report or an export cannot do, in words a user can act on."""

from __future__ import annotations

from twin.errors import ChipTwinError


class ReportError(ChipTwinError, ValueError):
    """No such run, an unknown export, a file that cannot be written: the message says what to do."""
