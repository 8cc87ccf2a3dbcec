"""The twin's exceptions: one root, small precise leaves, messages that say what to do."""


class TwinError(ValueError):
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
