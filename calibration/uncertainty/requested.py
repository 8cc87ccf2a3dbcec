"""Uncertainty beyond the Hessian, when the caller asks: profiles of flagged parameters, an MCMC run."""

from __future__ import annotations

from calibration.estimate.individual import IndividualProblem
from calibration.io.record import FitRecord
from calibration.uncertainty.mcmc import attach_mcmc
from calibration.uncertainty.profile import attach_profiles


def requested_uncertainty(
    problem: IndividualProblem,
    record: FitRecord,
    key: str = "",
    *,
    profile: bool = False,
    mcmc: int = 0,
    seed: int = 0,
    problems: dict | None = None,
) -> FitRecord:
    """What the caller asked for beyond the Hessian: profiles of flagged parameters, an MCMC run;
    ``problems`` (when given) collects ``key -> (problem, record)`` for plots and exports."""
    if profile:
        attach_profiles(problem, record)
    if mcmc:
        attach_mcmc(problem, record, n_steps=mcmc, seed=seed)
    if problems is not None:
        problems[key] = (problem, record)
    return record
