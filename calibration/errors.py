"""Calibration's exceptions: each says what to change, never NaN estimates dressed as results."""

from twin.errors import ChipTwinError


class CalibrationError(ChipTwinError, ValueError):
    """Root of every error calibration raises for bad input."""


class NoObservationsError(CalibrationError):
    """Nothing to fit: no observation rows, or all of them below the LLOQ."""


class UnidentifiableError(CalibrationError):
    """More parameters than the data can carry."""


class FitFailedError(CalibrationError):
    """The objective could not be evaluated (non-finite) at any start."""
