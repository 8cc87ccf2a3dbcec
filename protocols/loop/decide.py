"""The closed loop's three thinking steps: calibrate, propose, approve (the policy part).

``calibrate`` fits each chip's twin (``calibration.estimate.lab_fit``, one fit per chip — the
chips come from different donors) to the run's data, built in memory from the store.
``propose(fit, space)`` asks ``calibration.design.rank.Designer`` for the most informative next
experiment (Bayesian D-optimal over the fit's posterior), a typed ``ChipDesign`` whose dose is a
quantity; a parameter the fit could not give a standard error for enters the posterior with a
broad prior (log SD 1). Each
proposal carries its predicted outcome (90 % band over the posterior) and the safety checks
a person approving it would make (``safety_checks``). ``within_bounds`` is the auto-approval
policy.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pint

from calibration.design.rank import Designer
from calibration.design.space import DesignSpace
from calibration.estimate.lab_fit import fit_each_chip
from calibration.io.record import FitRecord
from protocols.language.quantities import magnitude
from protocols.language.rig_view import ChipView
from protocols.loop.lab_data import run_dataset
from twin.catalogue import get_model
from twin.units import Q_

DESIGNER = "calibration.design.rank.Designer (Bayesian D-optimal)"

BROAD_RSE_PERCENT = 100.0
DESIGN_DRAWS = 8
ASSAY_ERRORS = {"drug_medium": {"prop_cv": 0.10}, "metabolite_medium": {"prop_cv": 0.10}}


def calibrate(
    engine: Any,
    run_id: int,
    now_utc_s: float,
    parameters: Sequence[str],
    chips: Sequence[str],
    model: str = "liver_chip",
    previous: Mapping[str, Mapping[str, float]] | None = None,
) -> tuple[dict[str, FitRecord], int]:
    """(each chip's fit, rows fitted) on the run's data so far, read once from the store into memory;
    each chip warm-started from its previous estimates (inside the bounds), so later rounds cost a
    few iterations."""
    dataset, n_rows = run_dataset(engine, run_id, now_utc_s, list(chips))
    per_chip = fit_each_chip(
        dataset,
        list(chips),
        model,
        estimate=list(parameters) or None,
        starts={chip: _inside((previous or {}).get(chip, {}), model) for chip in chips},
        prior=weak_prior(parameters, model),
        observables=_informative(parameters),
    )
    return per_chip, n_rows


PRIOR_LOG_SD = 1.0  # weakly informative: the catalogue default ×/÷ 7 covers 95 %
PD_PARAMETERS = {"kmax", "ec50", "hill", "ocr"}


def weak_prior(parameters: Sequence[str], model: str) -> dict[str, tuple[float, float]]:
    """MAP rather than ML: one low dose cannot pin km or the PDMS uptake, and a flat
    likelihood must not walk a chip's estimates off to the parameter bounds."""
    spec = get_model(model)
    return {name: (spec.parameter(name).default, PRIOR_LOG_SD) for name in parameters}


def _informative(parameters: Sequence[str]) -> list[str] | None:
    """Viability (from TEER) informs only PD parameters; otherwise leave it out (it is slow to fit)."""
    return None if PD_PARAMETERS & set(parameters) else ["drug_medium", "metabolite_medium"]


def _inside(values: Mapping[str, float], model: str) -> dict[str, float]:
    spec = get_model(model)
    out = {}
    for name, value in values.items():
        p = spec.parameter(name)
        if p.lower * 1.01 < value < p.upper / 1.01:
            out[name] = float(value)
    return out


def _with_broad_prior(fit: FitRecord) -> FitRecord:
    fit = copy.deepcopy(fit)
    for entry in fit.theta.values():
        rse = entry.rse_percent
        if rse is None or not np.isfinite(rse) or rse > BROAD_RSE_PERCENT:
            entry.rse_percent = BROAD_RSE_PERCENT
    fit.correlation = {}  # with patched SDs the recorded correlations no longer belong together
    return fit


@dataclass(frozen=True)
class ChipDesign:
    """The next experiment for one chip: a dose that is a quantity, when to sample and how much."""

    chip: str
    dose: pint.Quantity  # concentration in the medium
    schedule: str
    sample_times_h: tuple[float, ...]
    sample_volume_ml: float
    utility: float
    method: str
    expected: dict[str, Any] = field(default_factory=dict)  # parameters' current and expected SDs
    predicted: dict[str, Any] = field(default_factory=dict)  # observables' 90 % band over the posterior

    @property
    def dose_um(self) -> float:
        return magnitude(self.dose, "concentration")

    @property
    def sampled_ml(self) -> float:
        return len(self.sample_times_h) * self.sample_volume_ml

    def to_document(self) -> dict[str, Any]:
        """What the proposal row stores for this chip (and the panel shows): plain numbers in named units."""
        return {
            "chip": self.chip,
            "dose_um": self.dose_um,
            "schedule": self.schedule,
            "sample_times_h": list(self.sample_times_h),
            "sample_volume_ml": self.sample_volume_ml,
            "utility": self.utility,
            "method": self.method,
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> ChipDesign:
        return cls(
            str(document["chip"]),
            Q_(float(document["dose_um"]), "uM"),
            str(document["schedule"]),
            tuple(float(t) for t in document["sample_times_h"]),
            float(document["sample_volume_ml"]),
            float(document["utility"]),
            str(document["method"]),
        )


def propose(fit: FitRecord, space: DesignSpace) -> ChipDesign:
    """The best candidate of ``space`` for ``fit``, with the parameters' current and expected SDs and
    the predicted observables with their 90 % band over the posterior."""
    best = Designer(space, _with_broad_prior(fit), draws=DESIGN_DRAWS).ask(1)[0]
    c = best.candidate
    return ChipDesign(
        c.chip,
        Q_(c.dose_um, "uM"),
        c.schedule,
        tuple(c.sample_times_h),
        c.sample_volume_ml,
        best.utility,
        best.utility_kind,
        best.parameters,
        best.predicted,
    )


def fallback_design(
    chip: str, doses_um: Sequence[float], schedules_h: Sequence[Sequence[float]], sample_ml: float, why: str
) -> ChipDesign:
    """The lowest dose on the first schedule, when the designer cannot rank (the reason is kept)."""
    return ChipDesign(chip, Q_(min(doses_um), "uM"), "s0", tuple(schedules_h[0]), sample_ml, 0.0, f"default ({why})")


def design_space(
    chip: str,
    doses_um: Sequence[float],
    schedules_h: Sequence[Sequence[float]],
    sample_ml: float,
    constants: Mapping[str, float],
) -> DesignSpace:
    schedules = {f"s{i}": tuple(s) for i, s in enumerate(schedules_h)}
    return DesignSpace(
        tuple(doses_um),
        schedules,
        (sample_ml,),
        (chip,),
        ("drug_medium", "metabolite_medium"),
        constants=dict(constants),
        errors=ASSAY_ERRORS,
    )


def safety_checks(chip: ChipView, design: ChipDesign) -> list[dict[str, Any]]:
    """What a person approving the proposal checks against the rig file: the dose against the
    chip's concentration limit, and the medium left after the samples against its minimum."""
    checks = []
    dose_um = design.dose_um
    if chip.max_concentration is not None:
        limit_um = magnitude(chip.max_concentration, "concentration")
        checks.append(
            {
                "chip": chip.name,
                "check": "dose concentration",
                "value": f"{dose_um:g} uM",
                "limit": f"<= {limit_um:g} uM",
                "ok": dose_um <= limit_um * (1 + 1e-9),
            }
        )
    sampled_ml = design.sampled_ml
    left_ml = magnitude(chip.medium_volume, "volume") - sampled_ml
    minimum_ml = magnitude(chip.min_medium_volume, "volume")
    checks.append(
        {
            "chip": chip.name,
            "check": "medium left after sampling",
            "value": f"{left_ml * 1000:.4g} uL",
            "limit": f">= {minimum_ml * 1000:.4g} uL",
            "ok": left_ml >= minimum_ml - 1e-12,
        }
    )
    return checks


def within_bounds(dose_um: float, sampled_ml: float, max_dose_um: float | None, max_sampled_ml: float | None) -> bool:
    if max_dose_um is None or max_sampled_ml is None:
        return False
    return dose_um <= max_dose_um + 1e-9 and sampled_ml <= max_sampled_ml + 1e-12
