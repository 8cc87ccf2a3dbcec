"""Calibration: fitting the twin with honest uncertainty, experiment design, dose optimisation."""

from calibration.errors import CalibrationError

__all__ = ["CalibrationError"]
