"""Fits of a NONMEM-style dataset with a catalogue model: individual, pooled or population."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from calibration.errors import CalibrationError
from calibration.estimate.error_models import ErrorModel
from calibration.estimate.failures import numerical_failures
from calibration.estimate.individual import IndividualProblem, fit_individual
from calibration.estimate.population import PopulationModel, fit_population, lognormal_individual
from calibration.io.datasets import load_nonmem
from calibration.io.nonmem import NonmemProblem
from calibration.io.record import Estimate, FitRecord
from calibration.uncertainty.requested import requested_uncertainty
from twin.catalogue import get_model

METHODS = ("individual", "pooled", "population")


@numerical_failures
def fit_nonmem(
    path: str | Path,
    model: str,
    method: str = "population",
    *,
    error: str = "prop",
    estimate: Sequence[str] | None = None,
    random: Sequence[str] | None = None,
    fix: Mapping[str, float] | None = None,
    init: Mapping[str, float] | None = None,
    n_starts: int = 1,
    observable: str = "cp",
    scale: float = 1.0,
    progress: Callable[[int, int], None] | None = None,
    profile: bool = False,
    mcmc: int = 0,
    problems: dict | None = None,
) -> FitRecord:
    """``profile``/``mcmc``/``problems``: as in ``fit_lab`` (individual and pooled fits); a population fit
    puts its problem under ``problems["population"]``."""
    post = partial(requested_uncertainty, profile=profile, mcmc=mcmc, problems=problems)
    if method not in METHODS:
        raise CalibrationError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    spec = get_model(model)
    fix = dict(fix or {})
    names = tuple(estimate or [p for p in spec.parameter_names if p not in fix])
    _check_names(spec, [*names, *fix, *(random or []), *(init or {})])
    start = {name: (init or {}).get(name, spec.parameter(name).default) for name in names}
    data, selection = load_nonmem(path)
    problem = NonmemProblem(data, spec, names, fix, observable=observable, scale=scale)
    error_model = ErrorModel(error)
    if method == "population":
        random = tuple(random or names)
        stray = [r for r in random if r not in names]
        if stray:
            raise CalibrationError(
                f"random effects on {', '.join(stray)}, which are not estimated; add them to --estimate"
            )
        pop = PopulationModel(names, random, lognormal_individual(names, random), problem.predict, error_model)
        record = fit_population(
            pop,
            problem.population_data(),
            start,
            model_name=spec.name,
            model_version=spec.version,
            n_starts=n_starts,
            progress=progress,
        )
        if problems is not None:  # for the population plots (VPC, η, observed vs predicted)
            problems["population"] = (problem, record)
    elif method == "pooled":
        record = _fit_pooled(problem, names, error_model, start, spec, n_starts, progress, post)
    else:
        record = _fit_each(problem, names, error_model, start, spec, n_starts, progress, post)
    record.data_selection.update(selection.as_dict())
    return record


def _check_names(spec, names) -> None:
    unknown = sorted({n for n in names if n not in spec.parameter_names})
    if unknown:
        raise CalibrationError(
            f"model {spec.name!r} has no parameter {', '.join(unknown)}; "
            f"its parameters are {', '.join(spec.parameter_names)}"
        )


def _bounds(spec, names):
    return {n: (spec.parameter(n).lower, spec.parameter(n).upper) for n in names}


def _fit_pooled(
    problem: NonmemProblem, names, error_model, start, spec, n_starts, progress, post=requested_uncertainty
) -> FitRecord:
    n_subjects = len(problem.ids)

    def predict(values: dict[str, float]) -> np.ndarray:
        phi = np.tile([values[n] for n in names], (n_subjects, 1))
        return problem.predict(phi)[problem.mask]

    individual = IndividualProblem(
        names,
        predict,
        problem.dv[problem.mask],
        error_model,
        bounds=_bounds(spec, names),
        model=spec.name,
        model_version=spec.version,
    )
    record = fit_individual(individual, start, n_starts=n_starts, progress=progress, method="pooled")
    record.n_subjects = n_subjects
    return post(individual, record, "pooled")


def _fit_each(
    problem: NonmemProblem, names, error_model, start, spec, n_starts, progress, post=requested_uncertainty
) -> FitRecord:
    """One fit per subject; the top-level theta is the median of the individual estimates."""
    records = {}
    for s, subject in enumerate(problem.ids):
        mask = problem.mask[s]

        def predict(values: dict[str, float], s=s, mask=mask) -> np.ndarray:
            phi = np.tile([values[n] for n in names], (len(problem.ids), 1))
            return problem.predict(phi)[s][mask]

        individual = IndividualProblem(
            names,
            predict,
            problem.dv[s][mask],
            error_model,
            bounds=_bounds(spec, names),
            model=spec.name,
            model_version=spec.version,
        )
        records[str(subject)] = post(individual, fit_individual(individual, start, n_starts=n_starts), str(subject))
        if progress:
            progress(s + 1, len(problem.ids))
    first = next(iter(records.values()))
    median = {n: float(np.median([r.theta[n].estimate for r in records.values()])) for n in names}
    return FitRecord(
        model=spec.name,
        model_version=spec.version,
        method="individual",
        converged=all(r.converged for r in records.values()),
        minus2ll=float(sum(r.minus2ll for r in records.values())),
        n_observations=int(problem.mask.sum()),
        n_subjects=len(records),
        n_estimated=sum(r.n_estimated for r in records.values()),
        theta={n: Estimate(v) for n, v in median.items()},
        sigma={k: float(np.median([r.sigma[k] for r in records.values()])) for k in first.sigma},
        individual={sid: {n: r.theta[n].estimate for n in names} for sid, r in records.items()},
        warnings=[f"subject {sid}: {w}" for sid, r in records.items() for w in r.warnings],
        wall_time_s=float(sum(r.wall_time_s for r in records.values())),
        subjects=records,
    )
