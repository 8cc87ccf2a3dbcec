"""Fits of organ-chip lab datasets: each chip, all chips pooled, or replicate chips as a population."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Callable, Mapping, Sequence, cast

import numpy as np

from calibration.errors import CalibrationError
from calibration.estimate.chip_jacobian import ChipsJacobian
from calibration.estimate.chip_population import ChipPopulation, check_random, fit_chip_population
from calibration.estimate.error_models import ErrorModel, Residuals
from calibration.estimate.failures import numerical_failures
from calibration.estimate.individual import IndividualProblem, fit_individual
from calibration.estimate.together import fit_together
from calibration.io.lab import ChipData, LabData, read_lab_dataset
from calibration.io.record import Estimate, FitRecord
from calibration.uncertainty.requested import requested_uncertainty
from twin.catalogue import get_model
from twin.chip import simulate_chip

# Offline assays scale with the concentration; online sensors have a constant noise floor.
DEFAULT_ERRORS = {"drug_medium": "prop", "metabolite_medium": "prop", "oxygen": "add", "viability": "add"}
SOLVER = {"method": "odeint", "rtol": 1e-8, "atol": 1e-10}
ENGINES = ("sensitivities", "differences")
DEFAULT_ESTIMATE = ("ps", "vmax", "km", "kon", "koff")


class ChipPredictor:
    """``predict(parameters by name) -> model value at each of the chip's observations``."""

    def __init__(self, chip: ChipData, model: str = "liver_chip") -> None:
        self.chip, self.model = chip, model
        self.times_h, self.index = np.unique(np.asarray(chip.times_h, dtype=float), return_inverse=True)
        self.observables = sorted(set(chip.observables))
        self.rows = {name: np.asarray([o == name for o in chip.observables]) for name in self.observables}

    def __call__(self, values: Mapping[str, float]) -> np.ndarray:
        out = simulate_chip(
            dict(values),
            self.chip.events,
            self.times_h,
            self.chip.constants,
            self.observables,
            model=self.model,
            **SOLVER,
        )
        prediction = np.empty(len(self.chip.values))
        for name, rows in self.rows.items():
            prediction[rows] = out[name][self.index[rows]]
        return prediction


def residuals_for(observables: Sequence[str], error: str | Mapping[str, str] | None) -> dict[str, ErrorModel]:
    chosen = dict(DEFAULT_ERRORS)
    if isinstance(error, str):
        chosen = dict.fromkeys(chosen, error)
    elif error:
        chosen.update(error)
    return {name: ErrorModel(chosen[name]) for name in sorted(set(observables))}


@numerical_failures
def fit_lab(
    data: str | Path | LabData,
    model: str = "liver_chip",
    method: str = "individual",
    *,
    error: str | Mapping[str, str] | None = None,
    estimate: Sequence[str] | None = None,
    fix: Mapping[str, float] | None = None,
    init: Mapping[str, float] | Mapping[str, Mapping[str, float]] | None = None,
    random: Sequence[str] | None = None,
    n_starts: int = 1,
    progress: Callable[[int, int], None] | None = None,
    profile: bool = False,
    mcmc: int = 0,
    problems: dict | None = None,
    prior: Mapping[str, tuple[float, float]] | None = None,
    observables: Sequence[str] | None = None,
    engine: str = "sensitivities",
) -> FitRecord:
    """``data``: a lab dataset file, or the same dataset in memory (``calibration.io.lab.lab_dataset``).
    ``profile``: profile-likelihood intervals of flagged parameters; ``mcmc``: emcee steps; ``problems``
    collects ``key -> (problem, record)`` (individual and pooled fits; see calibration.uncertainty.profile).
    ``prior`` (name → (median, log-scale SD)) makes it a MAP fit; ``observables`` keeps only
    those observations (e.g. leave viability out when no PD parameter is estimated).
    ``init``: one start for all chips (name → value), or (individual fits) a start per chip
    (chip → {name: value}); every chip it names must have observations to fit.
    ``engine``: "sensitivities" (Fisher scoring on batched forward sensitivities, the default) or
    "differences" (L-BFGS-B on finite differences of single-chip solves, the path before issue #11)."""
    if engine not in ENGINES:
        raise CalibrationError(f"unknown fit engine {engine!r}; use {' or '.join(ENGINES)}")
    exact = engine == "sensitivities"
    post = partial(requested_uncertainty, profile=profile, mcmc=mcmc, problems=problems)
    spec = get_model(model)
    fix = dict(fix or {})
    names = tuple(estimate or DEFAULT_ESTIMATE)
    per_chip = _per_chip(init)
    given = per_chip.values() if per_chip is not None else [init or {}]
    unknown = sorted((set(names) | set(fix) | {n for one in given for n in one}) - set(spec.parameter_names))
    if unknown:
        raise CalibrationError(
            f"model {model!r} has no parameter {', '.join(unknown)}; "
            f"its parameters are {', '.join(spec.parameter_names)}"
        )
    if per_chip is not None and method != "individual":
        raise CalibrationError(f"a start per chip is for individual fits; give a {method} fit one init for all chips")
    dataset = data if isinstance(data, Mapping) else read_lab_dataset(data)
    chips = {name: keep_observables(chip, observables) for name, chip in dataset.items()}
    chips = {name: chip for name, chip in chips.items() if chip.n_observations}
    missing = sorted(set(per_chip or {}) - set(chips))  # chips given a start but nothing to fit
    if missing or not chips:
        where = "the dataset" if isinstance(data, Mapping) else str(data)
        whose = f" of chip {', '.join(missing)}" if missing else ""
        raise CalibrationError(f"{where}: no observations{whose} of {', '.join(observables or [])} to fit")
    own = per_chip if per_chip is not None else dict.fromkeys(chips, cast(Mapping[str, float], init or {}))
    starts = {c: {n: own.get(c, {}).get(n, spec.parameter(n).default) for n in names} for c in chips}
    start = starts[next(iter(chips))]  # pooled and population fits: one start for all chips
    bounds = {n: (spec.parameter(n).lower, spec.parameter(n).upper) for n in names}
    if method == "population":
        return _population(chips, spec, names, fix, start, error, random)
    if method == "pooled":
        return _pooled(chips, spec, names, fix, start, bounds, error, n_starts, progress, post, prior, exact)
    if method == "individual":
        return _each(chips, spec, names, fix, starts, bounds, error, n_starts, progress, post, prior, exact)
    raise CalibrationError(f"unknown method {method!r}; use individual, pooled or population")


def fit_each_chip(
    dataset: LabData,
    chips: Sequence[str],
    model: str = "liver_chip",
    *,
    estimate: Sequence[str] | None = None,
    starts: Mapping[str, Mapping[str, float]] | None = None,
    prior: Mapping[str, tuple[float, float]] | None = None,
    observables: Sequence[str] | None = None,
) -> dict[str, FitRecord]:
    """Each chip fitted alone, each from its own start: ``fit_lab(..., "individual", init=starts)``
    (all chips in one lockstep batch: the closed loop's calibrate step), as chip → its own record."""
    init = {chip: (starts or {}).get(chip, {}) for chip in chips}  # every chip named: each must have data
    wanted = {chip: dataset[chip] for chip in chips if chip in dataset}
    record = fit_lab(wanted, model, "individual", estimate=estimate, init=init, prior=prior, observables=observables)
    records = record.chips or {chips[0]: record}
    for chip, own in records.items():
        own.individual = {chip: {n: v.estimate for n, v in own.theta.items()}}
    return records


def _per_chip(
    init: Mapping[str, float] | Mapping[str, Mapping[str, float]] | None,
) -> dict[str, Mapping[str, float]] | None:
    """``init`` as chip → start when it gives a start per chip; None when it is one start for all."""
    if init and all(isinstance(value, Mapping) for value in init.values()):
        return {chip: cast(Mapping[str, float], value) for chip, value in init.items()}
    return None


def keep_observables(chip: ChipData, observables: Sequence[str] | None) -> ChipData:
    """The chip's data with only the observations of ``observables`` (all when None); events kept."""
    if not observables:
        return chip
    keep = [k for k, name in enumerate(chip.observables) if name in observables]
    return ChipData(
        chip.chip,
        chip.events,
        chip.constants,
        [chip.times_h[k] for k in keep],
        [chip.observables[k] for k in keep],
        [chip.values[k] for k in keep],
    )


def chip_problem(chip: ChipData, spec, names, fix, bounds, error, prior=None, exact: bool = True) -> IndividualProblem:
    """One chip's problem; ``exact`` gives it the batched forward sensitivities (Fisher-scoring engine)."""
    groups = np.asarray(chip.observables, dtype=object)
    residuals = Residuals(groups, residuals_for(chip.observables, error))
    predictor = ChipPredictor(chip, spec.name)
    return IndividualProblem(
        tuple(names),
        predictor,
        np.asarray(chip.values),
        residuals,
        fixed=dict(fix),
        bounds=bounds,
        prior=dict(prior or {}),
        model=spec.name,
        model_version=spec.version,
        predict_jacobian=ChipsJacobian([chip], spec.name, names) if exact else None,
    )


def _each(
    chips,
    spec,
    names,
    fix,
    starts,
    bounds,
    error,
    n_starts,
    progress,
    post=requested_uncertainty,
    prior=None,
    exact=True,
) -> FitRecord:
    """Each chip alone, each from its own start (``starts``: chip → start)."""
    problems = {name: chip_problem(chip, spec, names, fix, bounds, error, prior, exact) for name, chip in chips.items()}
    together = exact and n_starts == 1 and len(problems) > 1  # all chips' fits in lockstep, batched
    initial = [starts[name] for name in problems]
    fitted = dict(zip(problems, fit_together(list(problems.values()), initial))) if together else {}
    records = {}
    for k, (name, problem) in enumerate(problems.items()):
        record = fitted[name] if together else fit_individual(problem, starts[name], n_starts=n_starts)
        records[name] = post(problem, record, name)
        if progress:
            progress(k + 1, len(chips))
    if len(records) == 1:
        record = next(iter(records.values()))
        record.individual = {name: {n: v.estimate for n, v in record.theta.items()} for name in records}
        return record
    first = next(iter(records.values()))
    return FitRecord(
        model=spec.name,
        model_version=spec.version,
        method="individual",
        converged=all(r.converged for r in records.values()),
        minus2ll=sum(r.minus2ll for r in records.values()),
        n_observations=sum(r.n_observations for r in records.values()),
        n_subjects=len(records),
        n_estimated=sum(r.n_estimated for r in records.values()),
        theta={n: Estimate(float(np.median([r.theta[n].estimate for r in records.values()]))) for n in names},
        sigma={k: float(np.median([r.sigma[k] for r in records.values()])) for k in first.sigma},
        individual={c: {n: r.theta[n].estimate for n in names} for c, r in records.items()},
        warnings=[f"chip {c}: {w}" for c, r in records.items() for w in r.warnings],
        wall_time_s=sum(r.wall_time_s for r in records.values()),
        chips=records,
    )


def _pooled(
    chips,
    spec,
    names,
    fix,
    start,
    bounds,
    error,
    n_starts,
    progress,
    post=requested_uncertainty,
    prior=None,
    exact=True,
) -> FitRecord:
    predictors = [ChipPredictor(chip, spec.name) for chip in chips.values()]
    observables = [o for chip in chips.values() for o in chip.observables]
    residuals = Residuals(np.asarray(observables, dtype=object), residuals_for(observables, error))
    dv = np.concatenate([chip.values for chip in chips.values()])

    def predict(values):
        return np.concatenate([predictor(values) for predictor in predictors])

    problem = IndividualProblem(
        tuple(names),
        predict,
        dv,
        residuals,
        fixed=dict(fix),
        bounds=bounds,
        prior=dict(prior or {}),
        model=spec.name,
        model_version=spec.version,
        predict_jacobian=ChipsJacobian(list(chips.values()), spec.name, names) if exact else None,
    )
    record = fit_individual(problem, start, n_starts=n_starts, progress=progress, method="pooled")
    record.n_subjects = len(chips)
    return post(problem, record, "pooled")


def _population(chips, spec, names, fix, start, error, random) -> FitRecord:
    """Replicate chips as a population: iterative two-stage on batched per-chip sensitivities
    (calibration.estimate.chip_population); every observable, each with its own error model."""
    check_random(names, random)
    observables = sorted({o for chip in chips.values() for o in chip.observables})
    problem = ChipPopulation(list(chips.values()), spec.name, names, fix, residuals_for(observables, error))
    return fit_chip_population(problem, start, model=spec.name, model_version=spec.version)
