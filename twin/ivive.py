"""From chip to patient: in-vitro–in-vivo extrapolation of hepatic clearance (MODELS.md §3).

The chain, with the units of each step:

    CLint,chip        = vmax / km                         mL/h   (nmol/h over nmol/mL)
    CLint per 1e6     = CLint,chip / N_cells / fu_inc     mL/h per 10^6 cells (unbound)
    CLint,u human     = per-1e6 × hepatocellularity × liver weight          L/h
    CLh (blood)       = Qh·fub·CLint,u / (Qh + fub·CLint,u),  fub = fu_p/BP  (well-stirred)
    Fh = 1 − CLh/Qh,  F = Fa·Fg·Fh

Numerical cores (``well_stirred``, ``clint_from_well_stirred``) take plain floats or numpy
arrays in any one consistent flow unit, so the population code can call them vectorised.
Functions taking quantities accept pint Quantities, strings like ``"20.7 mL/min/kg"`` or
bare numbers already in the unit their name states (twin.units.to_unit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pint

from twin.errors import InvalidValueError
from twin.units import Q_, to_unit

QuantityLike = pint.Quantity | str | float


@dataclass(frozen=True)
class ScalingFactors:
    """Physiological scaling factors for an adult; defaults are those of MODELS.md §3."""

    hepatocellularity_per_g: float = 120e6  # cells per g liver (published 99–139e6)
    liver_g_per_kg: float = 25.7  # g liver per kg body weight (~1.8 kg at 70 kg)
    qh_ml_min_per_kg: float = 20.7  # hepatic blood flow (~87 L/h at 70 kg)

    def liver_cells_million_per_kg(self) -> float:
        return self.hepatocellularity_per_g * self.liver_g_per_kg / 1e6

    def qh_l_per_h_per_kg(self) -> float:
        return self.qh_ml_min_per_kg * 60.0 / 1000.0


DEFAULT_SCALING = ScalingFactors()


def _fraction(value: float, what: str, *, allow_zero: bool = False) -> float:
    low_ok = value >= 0.0 if allow_zero else value > 0.0
    if not (low_ok and value <= 1.0):
        raise InvalidValueError(f"{what} must be a fraction in {'[0' if allow_zero else '(0'}, 1]; got {value}")
    return float(value)


def _positive(value: float, what: str) -> float:
    if not value > 0.0:
        raise InvalidValueError(f"{what} must be positive; got {value}")
    return float(value)


def fraction_unbound_blood(fu_p: float, bp: float) -> float:
    """fub = fu_p / BP (the unbound fraction seen by the liver from blood)."""
    return _fraction(fu_p, "fu_p") / _positive(bp, "blood-to-plasma ratio BP")


def chip_clint_ml_per_h(vmax: QuantityLike, km: QuantityLike) -> float:
    """Linear-range intrinsic clearance of a liver chip, vmax/km (nmol/h over µM = mL/h)."""
    vmax_nmol_h = _positive(to_unit(vmax, "nmol/h", what="vmax"), "vmax")
    km_um = _positive(to_unit(km, "µM", what="km"), "km")
    return vmax_nmol_h / km_um  # nmol/h ÷ nmol/mL = mL/h


def clint_per_million_cells_ml_per_h(
    vmax: QuantityLike, km: QuantityLike, n_cells_million: float, *, fu_inc: float = 1.0
) -> float:
    """Unbound chip CLint per 10^6 cells (mL/h); fu_inc corrects for binding in the chip."""
    cells = _positive(n_cells_million, "number of cells (millions)")
    return chip_clint_ml_per_h(vmax, km) / cells / _fraction(fu_inc, "fu_inc")


def human_clint_l_per_h(
    clint_per_million_ml_per_h: float,
    body_weight: QuantityLike = "70 kg",
    scaling: ScalingFactors = DEFAULT_SCALING,
) -> float:
    """Whole-liver CLint (L/h) = per-10^6-cell CLint × hepatocellularity × liver weight."""
    weight_kg = _positive(to_unit(body_weight, "kg", what="body weight"), "body weight")
    cells_million = scaling.liver_cells_million_per_kg() * weight_kg
    return clint_per_million_ml_per_h * cells_million / 1000.0


def hepatic_blood_flow_l_per_h(body_weight: QuantityLike = "70 kg", scaling: ScalingFactors = DEFAULT_SCALING) -> float:
    weight_kg = _positive(to_unit(body_weight, "kg", what="body weight"), "body weight")
    return scaling.qh_l_per_h_per_kg() * weight_kg


def well_stirred(qh, fub, clint_u):
    """Blood hepatic clearance Qh·fub·CLint,u/(Qh + fub·CLint,u); any consistent flow unit, vectorised."""
    product = fub * clint_u
    return qh * product / (qh + product)


def clint_from_well_stirred(qh, fub, clh_blood):
    """The unbound CLint that gives blood clearance ``clh_blood`` (inverse of ``well_stirred``)."""
    if np.any(np.asarray(clh_blood) >= np.asarray(qh)):
        raise InvalidValueError(
            f"hepatic blood clearance {clh_blood} is not below hepatic blood flow {qh}; "
            "the well-stirred model cannot reproduce it (check CL, fe and BP)"
        )
    return qh * clh_blood / (fub * (qh - clh_blood))


def hepatic_clearance(
    clint: QuantityLike, *, fu_p: float, bp: float, qh: QuantityLike, fu_inc: float = 1.0
) -> pint.Quantity:
    """Well-stirred hepatic blood clearance, in the unit of ``qh``.

    ``clint`` is the in-vitro-scaled (total) intrinsic clearance in any unit convertible to
    that of ``qh`` (e.g. both mL/min/kg, as Obach 1997 gives them); CLint,u = CLint/fu_inc.
    """
    qh_q = Q_(qh) if isinstance(qh, str) else qh
    if not isinstance(qh_q, pint.Quantity):
        raise InvalidValueError("qh: give hepatic blood flow with its unit, e.g. '20.7 mL/min/kg'")
    unit = str(qh_q.units)
    qh_value = _positive(float(qh_q.magnitude), "qh")
    clint_u = to_unit(clint, unit, what="CLint") / _fraction(fu_inc, "fu_inc")
    return Q_(well_stirred(qh_value, fraction_unbound_blood(fu_p, bp), clint_u), unit)


def hepatic_availability(clh_blood, qh):
    """Fh = 1 − CLh/Qh (fraction escaping first-pass hepatic extraction); vectorised."""
    return 1.0 - clh_blood / qh


def oral_bioavailability(fa: float, fg: float, fh):
    """F = Fa·Fg·Fh."""
    return _fraction(fa, "Fa") * _fraction(fg, "Fg") * fh


@dataclass(frozen=True)
class IviveResult:
    """Every intermediate of the chip-to-human chain, each named with its unit."""

    clint_chip_ml_per_h: float
    clint_u_per_million_ml_per_h: float
    clint_u_human_l_per_h: float
    qh_l_per_h: float
    fub: float
    clh_blood_l_per_h: float
    fh: float
    f_oral: float


def ivive_from_chip(
    vmax: QuantityLike,
    km: QuantityLike,
    n_cells_million: float,
    *,
    fu_p: float,
    bp: float,
    body_weight: QuantityLike = "70 kg",
    fu_inc: float = 1.0,
    fa: float = 1.0,
    fg: float = 1.0,
    scaling: ScalingFactors = DEFAULT_SCALING,
) -> IviveResult:
    """The whole MODELS.md §3 chain from fitted chip parameters to a human's CLh and F."""
    per_million = clint_per_million_cells_ml_per_h(vmax, km, n_cells_million, fu_inc=fu_inc)
    clint_human = human_clint_l_per_h(per_million, body_weight, scaling)
    qh = hepatic_blood_flow_l_per_h(body_weight, scaling)
    fub = fraction_unbound_blood(fu_p, bp)
    clh = float(well_stirred(qh, fub, clint_human))
    fh = float(hepatic_availability(clh, qh))
    return IviveResult(
        clint_chip_ml_per_h=chip_clint_ml_per_h(vmax, km),
        clint_u_per_million_ml_per_h=per_million,
        clint_u_human_l_per_h=clint_human,
        qh_l_per_h=qh,
        fub=fub,
        clh_blood_l_per_h=clh,
        fh=fh,
        f_oral=float(oral_bioavailability(fa, fg, fh)),
    )
