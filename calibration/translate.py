"""`chiptwin translate`: a chip fit record → IVIVE → a patient or a virtual population.

The chip's (vmax, km) posterior is the fit record's Laplace approximation (log-normal with
the record's 95 % intervals and correlation, ``calibration.dosing.optimise.chip_posterior``); each
draw goes through the chain of ``twin.translate`` (MODELS.md §3). Intervals:

- ``--patient``: one patient, n draws of the chip posterior → uncertainty of the chip fit;
- ``--population N``: N virtual patients (twin.patients.population defaults: covariates,
  genotypes, BSV), each with its own draw → uncertainty and between-patient variability;
- neither: the reference adult (70 kg, CrCl 100 mL/min, normal metaboliser).

The point value is the chain at the fit's estimate for the typical subject (the patient,
or the reference adult); the interval is the 2.5–97.5 % range of the draws.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from calibration.dosing.optimise import chip_posterior
from calibration.errors import CalibrationError
from twin.drugs import Drug
from twin.drugs.library import REFERENCE_CRCL_ML_MIN, REFERENCE_WEIGHT_KG
from twin.patients import Patient, Regimen
from twin.patients.clearance import enzyme_capacity, inhibition_divisors, patient_activity
from twin.patients.covariates import cockcroft_gault_ml_per_min
from twin.patients.genotypes import GENE_VALUES
from twin.patients.population import PopulationSpec, sample_covariates
from twin.translate import LIVER_MODELS, METRICS, Factor, Subjects, chain_factors, translate
from twin.userfile import read_user_text

MAX_DRAWS = 1_000_000


@dataclass(frozen=True)
class Interval:
    point: float
    median: float
    low: float
    high: float


@dataclass(frozen=True)
class TranslationResult:
    drug: str
    regimen: str
    who: str
    n_draws: int
    factors: tuple[Factor, ...]
    metrics: dict[str, Interval]
    notes: tuple[str, ...]


def load_chip_fit(path: str | Path) -> dict[str, Any]:
    """A liver_chip fit record (``chiptwin fit … --json``) with vmax and km estimated."""
    text = read_user_text(path, "fit record", error=CalibrationError)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CalibrationError(
            f"{path}: not JSON ({exc.msg}, line {exc.lineno}); fix: give the output of chiptwin fit … --json"
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("theta"), dict):
        raise CalibrationError(f"{path}: not a fit record (no theta); fix: give the output of chiptwin fit … --json")
    if document.get("model") not in ("liver_chip", "multi_organ"):
        raise CalibrationError(
            f"{path}: a {document.get('model')!r} fit has no chip metabolism; fix: give a "
            "liver_chip fit with vmax and km estimated"
        )
    for name in ("vmax", "km"):
        entry = document["theta"].get(name)
        try:
            ok = isinstance(entry, dict) and float(entry["estimate"]) > 0 and np.isfinite(float(entry["estimate"]))
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise CalibrationError(
                f"{path}: theta.{name} has no positive estimate; fix: estimate vmax and km "
                "(chiptwin fit LAB.csv -m liver_chip --estimate vmax,km …)"
            )
    return document


def _population_subjects(drug: Drug, n: int, rng: np.random.Generator) -> Subjects:
    spec = PopulationSpec()
    covariates = sample_covariates(spec, rng, n)
    sigma = np.sqrt(np.log1p(np.array([[spec.cv_cl], [spec.cv_v], [spec.cv_ka]]) ** 2))  # log-normal CV → SD
    eta = rng.standard_normal((3, n)) * sigma
    activity = {g: covariates[f"activity_{g}"] for g in GENE_VALUES if f"activity_{g}" in covariates}
    capacity = enzyme_capacity(drug.fm, activity, inhibition_divisors(spec.comedications, drug.fm))
    crcl = cockcroft_gault_ml_per_min(
        covariates["age_years"], covariates["weight_kg"], covariates["scr_mg_per_dl"], covariates["female"]
    )
    return Subjects(covariates["weight_kg"], crcl, np.broadcast_to(capacity, (n,)), eta[0], eta[1], eta[2])


def translate_fit(
    document: dict[str, Any],
    drug: Drug,
    regimen: Regimen,
    *,
    fit_label: str,
    n_cells_million: float,
    fu_inc: float | None = None,
    patient: Patient | None = None,
    population: int | None = None,
    n_draws: int = 2000,
    seed: int = 0,
    liver_model: str = "well-stirred",
) -> TranslationResult:
    if liver_model not in LIVER_MODELS:
        raise CalibrationError(f"--liver-model must be one of {', '.join(LIVER_MODELS)}; got {liver_model!r}")
    if patient is not None and population is not None:
        raise CalibrationError("give --patient or --population, not both")
    size = population if population is not None else n_draws
    if not 10 <= size <= MAX_DRAWS:
        raise CalibrationError(f"draws / virtual patients must be 10–{MAX_DRAWS:,}; got {size}")
    if not (np.isfinite(n_cells_million) and n_cells_million > 0):
        raise CalibrationError(f"--cells-million must be a positive number of cells (millions); got {n_cells_million}")
    notes: list[str] = []
    if fu_inc is None:
        fu_inc, fu_source = (
            (drug.chip.fu_inc, f"{drug.name}.toml [chip].fu_inc")
            if drug.chip is not None
            else (1.0, "ASSUMED 1 (no binding in the chip); give --fu-inc when measured")
        )
    else:
        fu_source = "--fu-inc"
    if not 0 < fu_inc <= 1:
        raise CalibrationError(f"--fu-inc must be a fraction in (0, 1]; got {fu_inc}")
    theta = document["theta"]
    vmax_hat, km_hat = float(theta["vmax"]["estimate"]), float(theta["km"]["estimate"])
    if not all(theta[n].get("ci95") for n in ("vmax", "km")):
        notes.append("the fit record has no 95 % interval for vmax or km: that parameter is taken as exact")
    rng = np.random.default_rng(seed)
    draws = chip_posterior(document).sample(size, rng)
    if patient is not None:
        activity, assumptions = patient_activity(patient, drug.fm)
        notes += assumptions
        capacity = float(enzyme_capacity(drug.fm, activity, inhibition_divisors(patient.comedications, drug.fm)))
        typical = (patient.weight_kg, patient.crcl_ml_per_min, capacity)
        who = f"patient {patient.id or '(no id)'}"
        subjects = Subjects(np.array([typical[0]]), np.array([typical[1]]), np.array([capacity]))
        subject_source = f"patient file ({who})"
    else:
        typical = (REFERENCE_WEIGHT_KG, REFERENCE_CRCL_ML_MIN, 1.0)
        subject_source = "reference adult (70 kg, CrCl 100 mL/min)"
        if population is not None:
            subjects, who = _population_subjects(drug, population, rng), f"{population:,} virtual patients"
            notes.append(
                "population: covariates, genotypes and BSV of twin.patients.population (illustrative adult "
                "distributions); interval = chip uncertainty + between-patient variability"
            )
        else:
            subjects, who = Subjects(*(np.array([v]) for v in typical)), "reference adult"
    kwargs = dict(n_cells_million=n_cells_million, regimen=regimen, fu_inc=fu_inc, liver_model=liver_model)
    values = translate(drug, draws["vmax"], draws["km"], subjects=subjects, **kwargs)
    point = translate(drug, vmax_hat, km_hat, subjects=Subjects(*(np.array([v]) for v in typical)), **kwargs)
    metrics = {}
    for name in METRICS:
        low, median, high = np.percentile(values[name], [2.5, 50.0, 97.5])
        metrics[name] = Interval(float(point[name][0]), float(median), float(low), float(high))

    def with_ci(name: str) -> str:
        ci = theta[name].get("ci95")
        return f"fit record {fit_label}" + (f" (95 % CI {ci[0]:.4g}–{ci[1]:.4g})" if ci else "")

    sources = {
        "vmax": with_ci("vmax"),
        "km": with_ci("km"),
        "n_cells": "--cells-million",
        "fu_inc": fu_source,
        "subject": subject_source,
    }
    factors = chain_factors(
        drug,
        vmax_hat,
        km_hat,
        n_cells_million=n_cells_million,
        fu_inc=fu_inc,
        weight_kg=typical[0],
        crcl_ml_per_min=typical[1],
        capacity=typical[2],
        sources=sources,
        liver_model=liver_model,
    )
    return TranslationResult(drug.name, str(regimen), who, size, tuple(factors), metrics, tuple(notes))
