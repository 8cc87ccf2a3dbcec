"""A chip fit, reviewed: data against the prediction with its band, residuals, profiles.

The numbers behind the panel's model review (and anyone's plot): given a chip's lab data
and the FitRecord fitted to it, rebuild the fit's problem — the estimated parameters, the
fixed ones and the prior the record names, one error model per observable as its residual
SDs say — and evaluate it.

    view = review_chip_fit(chip, record)     # .data (observations), .curves (dense prediction + band)
    profile = profile_chip_fit(chip, record, "km")

The band is the 90 % band of the prediction from the parameter covariance (delta method on
the log parameters, as ``calibration.io.plots``); residuals are weighted, (y − f)/SD, so a good
fit scatters about 0 within ±2 whatever the observable's unit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from calibration.errors import CalibrationError
from calibration.estimate.individual import IndividualProblem
from calibration.estimate.lab_fit import chip_problem, keep_observables
from calibration.io.lab import ChipData
from calibration.io.plots import Z90, prediction_band, record_covariance
from calibration.io.record import FitRecord
from calibration.uncertainty.profile import Profile, optimum, profile_parameter
from twin.catalogue import get_model

CURVE_POINTS = 200


@dataclass
class FitView:
    data: pd.DataFrame  # time_h, observable, value, prediction, weighted_residual
    curves: pd.DataFrame  # time_h, observable, prediction, low, high (90 % band; NaN without a covariance)
    has_band: bool


def errors_of(record: FitRecord) -> dict[str, str]:
    """observable → error kind (add | prop | comb), read off the record's residual SD names."""
    kinds: dict[str, set[str]] = {}
    for name in record.sigma:
        observable, _, parameter = name.rpartition(".")
        kinds.setdefault(observable, set()).add(parameter)
    return {o: "comb" if len(p) == 2 else "prop" if "prop_cv" in p else "add" for o, p in kinds.items()}


def record_problem(chip: ChipData, record: FitRecord) -> IndividualProblem:
    """The problem ``record`` was fitted on, for the observables it has residual SDs for."""
    errors = errors_of(record)
    fitted = keep_observables(chip, list(errors))
    if not errors or not fitted.n_observations:
        raise CalibrationError(
            f"chip {chip.chip}: no observation of {', '.join(errors) or 'the fitted observables'} "
            "in the data of this fit"
        )
    return _problem(fitted, record, errors)


def _problem(chip: ChipData, record: FitRecord, errors: dict[str, str]) -> IndividualProblem:
    spec = get_model(record.model)
    names = tuple(record.theta)
    bounds = {n: (spec.parameter(n).lower, spec.parameter(n).upper) for n in names}
    selection = record.data_selection or {}
    prior = {n: tuple(v) for n, v in (selection.get("prior") or {}).items()}
    return chip_problem(chip, spec, names, selection.get("fixed") or {}, bounds, errors, prior)


def review_chip_fit(
    chip: ChipData, record: FitRecord, points: int = CURVE_POINTS, until_h: float | None = None
) -> FitView:
    """``until_h``: draw the prediction that far (a forecast past the data, through the events
    given since); by default to the last observation."""
    problem = record_problem(chip, record)
    x_hat = optimum(problem, record)
    covariance = record_covariance(problem, record)
    f = problem.predict(problem.parameters(x_hat))
    sd = np.sqrt(problem.error.variance(f, np.exp(x_hat[problem.n_model :])))
    data = pd.DataFrame(
        {
            "time_h": problem.predict.chip.times_h,
            "observable": problem.predict.chip.observables,
            "value": problem.dv,
            "prediction": f,
            "weighted_residual": (problem.dv - f) / sd,
        }
    )
    return FitView(data, _curves(problem, record, x_hat, covariance, points, until_h), covariance is not None)


def _curves(
    problem: IndividualProblem,
    record: FitRecord,
    x_hat: np.ndarray,
    covariance: np.ndarray | None,
    points: int,
    until_h: float | None,
) -> pd.DataFrame:
    """The prediction on a dense grid from 0 to ``until_h`` (default: the last observation), with its band."""
    chip = problem.predict.chip
    observables = sorted(set(chip.observables))
    grid = np.linspace(0.0, max(chip.times_h) if until_h is None else until_h, points)
    dense = ChipData(
        chip.chip,
        chip.events,
        chip.constants,
        [*grid] * len(observables),
        [o for o in observables for _ in grid],
        [1.0] * (len(grid) * len(observables)),
    )
    dense_problem = _problem(dense, record, errors_of(record))
    f, sd = prediction_band(dense_problem, x_hat, covariance)
    return pd.DataFrame(
        {
            "time_h": dense.times_h,
            "observable": dense.observables,
            "prediction": f,
            "low": f - Z90 * sd,
            "high": f + Z90 * sd,
        }
    )


def profile_chip_fit(chip: ChipData, record: FitRecord, name: str) -> Profile:
    """The profile likelihood of one estimated parameter (each point a re-fit of the others)."""
    if name not in record.theta:
        raise CalibrationError(f"{name!r} was not estimated in this fit; estimated: {', '.join(record.theta)}")
    problem = record_problem(chip, record)
    return profile_parameter(problem, optimum(problem, record), name)
