"""Targets, probability of target attainment, toxicity margin and a dose recommendation.

A target is a window on a steady-state metric (``auc_tau_ss`` in mg·h/L or ``ctrough_ss``
in mg/L). A single value X means the window 0.80·X–1.25·X (the bioequivalence
convention), whose geometric centre is X. The model is linear in dose, so the dose that
centres a patient is dose × centre / metric, with the centre taken on the log scale
(exposures are log-normal); with tablet strengths it is the achievable dose closest to
that on the log scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from twin.errors import TwinError
from twin.patients.exposure import Exposure

METRICS = {"auc_tau_ss": "mg·h/L", "ctrough_ss": "mg/L"}
MAX_UNITS_PER_DOSE = 4  # tablets of one strength per dose when rounding to strengths
MAX_DOSE_CHANGE = 1000.0  # beyond this the regimen, not the dose, is what is wrong


class TargetError(TwinError):
    """A target window or strength list the twin cannot use."""


@dataclass(frozen=True)
class Target:
    metric: str
    low: float
    high: float

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise TargetError(f"unknown target metric {self.metric!r}; choose one of: {', '.join(METRICS)}")
        if not 0 < self.low < self.high:
            raise TargetError(f"target window must satisfy 0 < low < high; got {self.low}:{self.high}")

    @property
    def centre(self) -> float:
        return math.sqrt(self.low * self.high)

    def values(self, exposure: Exposure) -> np.ndarray:
        return np.asarray(getattr(exposure, self.metric))

    def attained(self, exposure: Exposure) -> np.ndarray:
        values = self.values(exposure)
        return (values >= self.low) & (values <= self.high)


def parse_target(metric: str, text: str) -> Target:
    """``"40:60"`` → that window; ``"50"`` → 40–62.5 (80–125 %)."""
    try:
        parts = [float(p) for p in text.split(":")]
    except ValueError:
        raise TargetError(f"cannot read target {text!r}; write LOW:HIGH or a single value") from None
    if len(parts) == 1:
        return Target(metric, 0.8 * parts[0], 1.25 * parts[0])
    if len(parts) == 2:
        return Target(metric, parts[0], parts[1])
    raise TargetError(f"cannot read target {text!r}; write LOW:HIGH or a single value")


def probability_of_target_attainment(target: Target, exposure: Exposure) -> float:
    return float(np.mean(target.attained(exposure)))


def toxicity_margin(ec50_mg_per_l: float | None, exposure: Exposure) -> np.ndarray | None:
    """Chip EC50 over predicted unbound Cmax (None when the drug has no chip EC50)."""
    if ec50_mg_per_l is None:
        return None
    return ec50_mg_per_l / np.asarray(exposure.cmax_unbound)


def _achievable_doses_mg(strengths_mg: Sequence[float]) -> np.ndarray:
    if not strengths_mg or min(strengths_mg) <= 0:
        raise TargetError(f"strengths must be positive doses in mg; got {list(strengths_mg)}")
    units = np.arange(1, MAX_UNITS_PER_DOSE + 1)
    return np.unique(np.outer(np.asarray(strengths_mg, dtype=float), units).ravel())


@dataclass(frozen=True)
class DoseRecommendation:
    dose_mg: float
    exact_dose_mg: float
    predicted: float  # the target metric at ``dose_mg``
    in_window: bool


def recommend_dose(
    target: Target, dose_mg: float, exposure: Exposure, strengths_mg: Sequence[float] | None = None
) -> DoseRecommendation:
    """The dose that puts one patient's metric (predicted at ``dose_mg``) at the window centre."""
    metric_per_mg = float(np.ravel(target.values(exposure))[0]) / dose_mg
    if not metric_per_mg > 0:
        raise TargetError(
            f"the predicted {target.metric} is 0 at {dose_mg:g} mg (the drug washes out within the "
            "interval); no dose reaches the window — shorten the interval or target AUC"
        )
    exact = target.centre / metric_per_mg
    if not 1 / MAX_DOSE_CHANGE <= exact / dose_mg <= MAX_DOSE_CHANGE:
        raise TargetError(
            f"centring {target.metric} needs {exact:.3g} mg, over {MAX_DOSE_CHANGE:g}× away from "
            f"{dose_mg:g} mg; change the interval (or the target) rather than the dose"
        )
    dose = exact
    if strengths_mg:
        candidates = _achievable_doses_mg(strengths_mg)
        dose = float(candidates[np.argmin(np.abs(np.log(candidates / exact)))])
    predicted = metric_per_mg * dose
    return DoseRecommendation(dose, exact, predicted, bool(target.low <= predicted <= target.high))
