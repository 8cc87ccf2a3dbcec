"""The trial subpackage's user errors (under calibration's one root)."""

from calibration.errors import CalibrationError


class TrialError(CalibrationError):
    """A trial file, trial data or a design the trial tools cannot use; the message says the fix."""
