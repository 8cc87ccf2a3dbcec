"""Calibration: fitting the twin with honest uncertainty, experiment design, dose optimisation."""


class CalibrationError(ValueError):
    """Root of every error calibration raises for bad input (the message says what to change)."""
