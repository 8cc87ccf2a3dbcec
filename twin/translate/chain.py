"""From a chip fit to a patient: the IVIVE chain of MODELS.md §3, vectorised over posterior draws.

For each draw of the chip's (vmax, km) and each subject (covariates, enzyme capacity):

    CLint,chip      = vmax / km                                    mL/h   (linear range)
    CLint,u /1e6    = CLint,chip / N_cells / fu_inc                 mL/h per 10^6 cells
    CLint,u human   = /1e6 × hepatocellularity × liver g/kg × BW    L/h   (× enzyme capacity)
    CLh,blood       = liver model(Qh, fu_p/BP, CLint,u)              L/h   (well-stirred or dispersion)
    CL              = CLh,blood × BP + CLr (library fe, CrCl)        L/h
    F               = Fa·Fg·(1 − CLh,blood/Qh)

The dispersion model (Roberts & Rowland 1986, J Pharmacokinet Biopharm; dispersion
number DN = 0.17, their estimate for the human liver): with RN = fub·CLint,u/Qh and
a = √(1 + 4·RN·DN), Fh = 4a / ((1 + a)²·e^((a − 1)/(2 DN)) − (1 − a)²·e^(−(a + 1)/(2 DN))),
written with e^(−(a − 1)/(2 DN)) factored out so that it cannot overflow; CLh = Qh·(1 − Fh).
It lies between the well-stirred and the parallel-tube models.

The patient's PK follows twin.patients.clearance.individual_pk term by term (η_CL on CLint
and CLr, η_V, η_ka), with the liver model as the one choice added; a test holds the
well-stirred path equal to individual_pk. Then the one-compartment exposure of twin.patients.exposure (Cmax after the last dose, its
time, AUC from the first dose to τ after the last, AUCτ at steady state). PDMS loss is not
in this chain: the liver_chip model fits it separately (kon, koff), so vmax/km are the
cells' metabolism alone. Each factor is returned with its value, unit and source.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.drugs import Drug
from twin.drugs.library import REFERENCE_CRCL_ML_MIN
from twin.errors import InvalidValueError
from twin.ivive import DEFAULT_SCALING, well_stirred
from twin.patients import IndividualPK, Regimen, exposure

LIVER_MODELS = ("well-stirred", "dispersion")
DISPERSION_NUMBER = 0.17  # Roberts & Rowland 1986 (J Pharmacokinet Biopharm), human liver

METRICS = {  # name → unit of the metrics a translation reports
    "clint_u_l_per_h": "L/h",
    "cl_l_per_h": "L/h",
    "f_oral": "",
    "cmax_mg_per_l": "mg/L",
    "cmax_um": "µM",
    "tmax_h": "h",
    "auc_0_end_mg_h_per_l": "mg·h/L",
    "auc_tau_ss_mg_h_per_l": "mg·h/L",
}


@dataclass(frozen=True)
class Factor:
    name: str
    value: float | None
    unit: str
    source: str


@dataclass(frozen=True)
class Subjects:
    """Who receives the drug: arrays of equal length (or scalars), one entry per subject."""

    weight_kg: np.ndarray
    crcl_ml_per_min: np.ndarray
    capacity: np.ndarray  # hepatic CLint relative to a normal metaboliser
    eta_cl: np.ndarray | float = 0.0
    eta_v: np.ndarray | float = 0.0
    eta_ka: np.ndarray | float = 0.0


def _positive(values, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(array) & (array > 0)):
        raise InvalidValueError(f"{what} must be finite and positive")
    return array


def hepatic_blood_clearance(qh, fub, clint_u, model: str = "well-stirred", dn: float = DISPERSION_NUMBER):
    """Hepatic blood clearance (unit of qh) by the chosen liver model; vectorised."""
    if model == "well-stirred":
        return well_stirred(qh, fub, clint_u)
    if model != "dispersion":
        raise InvalidValueError(f"liver model must be one of {', '.join(LIVER_MODELS)}; got {model!r}")
    rn = np.asarray(fub * clint_u / qh, dtype=float)
    a = np.sqrt(1.0 + 4.0 * rn * dn)
    fh = 4.0 * a / ((1.0 + a) ** 2 - (1.0 - a) ** 2 * np.exp(-a / dn))
    fh = fh * np.exp(-(a - 1.0) / (2.0 * dn))
    return qh * (1.0 - fh)


def peak_time_after_last_dose_h(cl_l_per_h, v_l, ka_per_h, regimen: Regimen):
    """t'max after the last of n doses: ln(ka·R_ka/(k·R_k))/(ka − k), R_x = (1 − e^(−n x τ))/(1 − e^(−x τ));
    0 for iv (the closed form of twin.patients.exposure)."""
    k = np.asarray(cl_l_per_h, float) / np.asarray(v_l, float)
    if regimen.route == "iv":
        return np.zeros_like(k)
    ka = np.asarray(ka_per_h, float)
    ka = np.where(np.abs(ka - k) <= 1e-8 * k, k * (1 + 1e-8), ka)  # the same nudge as exposure's closed form
    n, tau = regimen.n_doses, regimen.interval_h

    def accumulation(rate):
        return np.expm1(-n * rate * tau) / np.expm1(-rate * tau)

    return np.maximum(np.log(ka * accumulation(ka) / (k * accumulation(k))) / (ka - k), 0.0)


def clint_u_per_kg_l_per_h(vmax_nmol_per_h, km_um, n_cells_million: float, fu_inc: float = 1.0):
    """Unbound human hepatic CLint per kg body weight (L/h/kg) from chip draws."""
    if not 0 < fu_inc <= 1:
        raise InvalidValueError(f"fu_inc must be a fraction in (0, 1]; got {fu_inc}")
    per_million_ml_h = (
        _positive(vmax_nmol_per_h, "vmax")
        / _positive(km_um, "km")
        / float(_positive(n_cells_million, "N_cells (millions)"))
        / fu_inc
    )
    return per_million_ml_h * DEFAULT_SCALING.liver_cells_million_per_kg() / 1000.0


def translate(
    drug: Drug,
    vmax_nmol_per_h,
    km_um,
    *,
    n_cells_million: float,
    subjects: Subjects,
    regimen: Regimen,
    fu_inc: float = 1.0,
    liver_model: str = "well-stirred",
) -> dict[str, np.ndarray]:
    """Every metric of ``METRICS`` per (draw, subject) pair; draws and subjects broadcast together."""
    clint_per_kg = clint_u_per_kg_l_per_h(vmax_nmol_per_h, km_um, n_cells_million, fu_inc)
    weight = np.asarray(subjects.weight_kg, dtype=float)
    exp_eta_cl = np.exp(subjects.eta_cl)
    clint = clint_per_kg * weight * np.asarray(subjects.capacity, dtype=float) * exp_eta_cl
    qh = DEFAULT_SCALING.qh_l_per_h_per_kg() * weight
    clh_blood = hepatic_blood_clearance(qh, drug.fu_p / drug.bp, clint, liver_model)
    cl_renal = drug.cl_renal_ref_l_per_h * np.asarray(subjects.crcl_ml_per_min) / REFERENCE_CRCL_ML_MIN * exp_eta_cl
    pk = IndividualPK(
        *(
            np.atleast_1d(np.asarray(x, dtype=float))
            for x in (
                clh_blood * drug.bp + cl_renal,
                drug.v_l_per_kg * weight * np.exp(subjects.eta_v),
                drug.ka_per_h * np.exp(subjects.eta_ka),
                drug.fa * drug.fg * (1.0 - clh_blood / qh),
            )
        ),
        fu_p=drug.fu_p,
    )
    result = exposure(pk, regimen)
    cmax = np.atleast_1d(result.cmax)
    out = {
        "clint_u_l_per_h": clint,
        "cl_l_per_h": pk.cl_l_per_h,
        "f_oral": pk.f_oral if regimen.route == "oral" else np.ones_like(cmax),
        "cmax_mg_per_l": cmax,
        "cmax_um": cmax * 1000.0 / drug.molecular_weight_g_per_mol,
        "tmax_h": peak_time_after_last_dose_h(pk.cl_l_per_h, pk.v_l, pk.ka_per_h, regimen)
        + (regimen.n_doses - 1) * regimen.interval_h,
        "auc_0_end_mg_h_per_l": result.auc_0_end,
        "auc_tau_ss_mg_h_per_l": result.auc_tau_ss,
    }
    shape = np.broadcast_shapes(*(np.shape(v) for v in out.values()))
    return {name: np.broadcast_to(np.asarray(v, float), shape).copy() for name, v in out.items()}


def chain_factors(
    drug: Drug,
    vmax_nmol_per_h: float,
    km_um: float,
    *,
    n_cells_million: float,
    fu_inc: float,
    weight_kg: float,
    crcl_ml_per_min: float,
    capacity: float,
    sources: dict[str, str],
    liver_model: str = "well-stirred",
) -> list[Factor]:
    """The chain's factors at one point (the fit's estimate, one subject), each with its source.
    ``sources`` names where the chip's inputs came from (keys vmax, km, n_cells, fu_inc, subject)."""
    s = DEFAULT_SCALING
    clint_chip = vmax_nmol_per_h / km_um
    per_million = clint_chip / n_cells_million / fu_inc
    clint_u = per_million * s.liver_cells_million_per_kg() / 1000.0 * weight_kg * capacity
    qh = s.qh_l_per_h_per_kg() * weight_kg
    fub = drug.fu_p / drug.bp
    clh = float(hepatic_blood_clearance(qh, fub, clint_u, liver_model))
    renal = drug.cl_renal_ref_l_per_h * crcl_ml_per_min / 100.0
    src = drug.sources.get
    return [
        Factor("chip vmax", vmax_nmol_per_h, "nmol/h", sources["vmax"]),
        Factor("chip km", km_um, "µM", sources["km"]),
        Factor("CLint,chip = vmax/km", clint_chip, "mL/h", "MODELS.md §3 (linear range)"),
        Factor("PDMS loss", None, "", "removed: liver_chip fits kon/koff separately, vmax/km are metabolism only"),
        Factor("N_cells", n_cells_million, "10^6 cells", sources["n_cells"]),
        Factor("fu_inc (binding in the chip)", fu_inc, "", sources["fu_inc"]),
        Factor("CLint,u per 10^6 cells", per_million, "mL/h", "CLint,chip / N_cells / fu_inc"),
        Factor(
            "hepatocellularity",
            s.hepatocellularity_per_g / 1e6,
            "10^6 cells/g",
            "MODELS.md §3 default 120e6/g (published 99–139e6: Barter 2007, Sohlenius-Sternbeck 2006)",
        ),
        Factor("liver weight", s.liver_g_per_kg, "g/kg", "MODELS.md §3 (~1.8 kg at 70 kg)"),
        Factor("body weight", weight_kg, "kg", sources["subject"]),
        Factor("enzyme capacity (genotype, DDI)", capacity, "", "CPIC activity score / co-medication, twin.patients"),
        Factor("CLint,u human", clint_u, "L/h", "per 10^6 × hepatocellularity × liver g/kg × BW × capacity"),
        Factor("Qh", qh, "L/h", f"{s.qh_ml_min_per_kg} mL/min/kg, MODELS.md §3"),
        Factor("fu_p", drug.fu_p, "", src("properties.fu_p", "drug file")),
        Factor("BP", drug.bp, "", src("properties.bp", "drug file")),
        *(
            [Factor("dispersion number DN", DISPERSION_NUMBER, "", "Roberts & Rowland 1986")]
            if liver_model == "dispersion"
            else []
        ),
        Factor(
            f"CLh (blood), {liver_model}",
            clh,
            "L/h",
            "Qh·fub·CLint,u/(Qh + fub·CLint,u)"
            if liver_model == "well-stirred"
            else "dispersion model, Roberts & Rowland 1986",
        ),
        Factor("CrCl", crcl_ml_per_min, "mL/min", sources["subject"] + " (Cockcroft–Gault)"),
        Factor("renal CL", renal, "L/h", "library fe × CL, scaled by CrCl/100: " + src("properties.fe", "")),
        Factor("CL (plasma)", clh * drug.bp + renal, "L/h", "CLh·BP + CLr"),
        Factor("Fa·Fg", drug.fa * drug.fg, "", f"{src('properties.fa', '')}; {src('properties.fg', '')}"),
        Factor("F", drug.fa * drug.fg * (1 - clh / qh), "", "Fa·Fg·(1 − CLh/Qh)"),
        Factor("V", drug.v_l_per_kg * weight_kg, "L", src("properties.v", "drug file")),
        Factor("ka", drug.ka_per_h, "1/h", src("properties.ka", "drug file")),
    ]
