"""The project's error root, and the twin's exceptions: small precise leaves, messages that say what to do.

``ChipTwinError`` lives here because the twin is the layer every other package stands on: each
package's root error derives from it, so the command line and the panel map user errors in one
place (``ui.errors``) and a caller can catch everything ChipTwin raises on purpose with one name.
"""


class ChipTwinError(Exception):
    """Root of every error ChipTwin raises on purpose: the message names the problem and the fix."""


class TwinError(ChipTwinError, ValueError):
    """Root of every error the twin raises for bad input (a user can act on the message)."""


class UnknownModelError(TwinError):
    """A model name that is not in the catalogue."""


class UnknownParameterError(TwinError):
    """A parameter name that the model does not have."""


class InvalidValueError(TwinError):
    """A value that is missing, not finite, or outside what the model accepts."""


class UnitError(TwinError):
    """A quantity whose unit does not convert to the one required."""


class DatasetError(TwinError):
    """A dataset row the twin cannot simulate; the message names the row."""
