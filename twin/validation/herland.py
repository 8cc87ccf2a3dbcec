"""Herland et al. 2020 (Nat Biomed Eng 4:421) Table 1, nicotine gum: the twin's prediction.

Herland's linked gut–liver–kidney chips predicted the human plasma profile after one 4.2 mg
nicotine gum; the clinical values are Digard et al. 2013 (Nicotine Tob Res 15:255). We do not
have Herland's chip read-outs, so the liver input here is a published in-vitro one — human
liver microsomes' cotinine formation (Messina et al. 1997) scaled by MODELS.md §3 — and
the rest of the chain is the twin's own (well-stirred liver, oral one-compartment model):

    CLint,u  = in-vitro CLint (twin/validation/in_vitro.py, nicotine.toml [in_vitro])
    CLh      = well-stirred(Qh, fub, CLint,u);  CL = CLh·BP + CLr (observed renal)
    F        = released fraction × Fa·Fg·Fh     (Herland's model too sends the gum dose
                                                 through the gut and liver first pass)
    C(t)     = F·D·ka/(V(ka − k))·(e^(−k t) − e^(−ka t)),   V = Vss, k = CL/V

Cmax, tmax = ln(ka/k)/(ka − k) and AUC(0–2 h) (Herland's AUC window) follow in closed form.
Assumptions (each also in nicotine.toml): BP = 1, ka = 2 /h from the 30 min chew, no
microsomal binding, a 70 kg adult with CrCl 100 mL/min.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from twin.drugs import load_drug
from twin.patients import Regimen, exposure, individual_pk
from twin.validation.in_vitro import in_vitro_clearance

REFERENCE_CRCL_ML_MIN = 100.0
AUC_WINDOW_H = 2.0  # Herland Table 1: AUC over 0–2 h, the clinical sampling window


@dataclass(frozen=True)
class GumDose:
    """One nicotine gum: content and the fraction a chewer extracts from it."""

    nicotine_mg: float = 4.2  # Herland 2020 Table 1 ("Nicotine Gum (4.2 mg)"), Digard et al. 2013
    # extraction from 4 mg gum averages 72 %: "Determinants of nicotine intake while chewing nicotine
    # polacrilex gum", Clin Pharmacol Ther 1987;41:467 (PMID 3829583)
    fraction_released: float = 0.72


@dataclass(frozen=True)
class HerlandGumRow:
    """Herland 2020 Table 1, nicotine gum (4.2 mg): clinical values and the two chip cohorts."""

    cmax_um: float = 0.052
    cmax_sd_um: float = 0.009
    tmax_min: float = 45.0
    tmax_range_min: tuple[float, float] = (19.8, 90.0)
    auc_0_2h_um_h: float = 0.08
    auc_0_2h_sd_um_h: float = 0.02
    chip_cmax_um: tuple[float, float] = (0.050, 0.054)
    chip_tmax_min: tuple[float, float] = (40.0, 38.9)
    chip_auc_0_2h_um_h: tuple[float, float] = (0.062, 0.073)


HERLAND_TABLE1_GUM = HerlandGumRow()


@dataclass(frozen=True)
class Factor:
    name: str
    value: float
    unit: str
    source: str


@dataclass(frozen=True)
class NicotinePrediction:
    cmax_um: float
    tmax_min: float
    auc_0_2h_um_h: float
    cl_plasma_l_per_h: float
    f_oral: float
    factors: tuple[Factor, ...]


def _um(mg_per_l: float, molecular_weight_g_per_mol: float) -> float:
    return mg_per_l * 1000.0 / molecular_weight_g_per_mol  # mg/L ÷ g/mol = mmol/L; ×1000 → µM


def predict_nicotine_gum(gum: GumDose = GumDose(), weight_kg: float = 70.0) -> NicotinePrediction:
    drug = load_drug("nicotine")
    in_vitro = in_vitro_clearance("nicotine")
    if in_vitro is None:  # the library file is part of the check
        raise RuntimeError("nicotine.toml has no [in_vitro] table")
    clint_u_l_h_per_kg = in_vitro.clint_u_ml_min_per_kg * 60.0 / 1000.0
    # forward IVIVE replaces the library's back-calculated CLint; the gum's release scales Fa
    forward = replace(drug, clint_u_l_per_h_per_kg=clint_u_l_h_per_kg, fa=drug.fa * gum.fraction_released)
    pk = individual_pk(forward, np.array([weight_kg]), np.array([REFERENCE_CRCL_ML_MIN]), 1.0)
    regimen = Regimen(dose_mg=gum.nicotine_mg, interval_h=24.0, n_doses=1, route="oral")
    cmax_mg_l = float(np.ravel(exposure(pk, regimen).cmax)[0])
    cl, v, ka, f = (float(np.ravel(x)[0]) for x in (pk.cl_l_per_h, pk.v_l, pk.ka_per_h, pk.f_oral))
    k = cl / v
    tmax_h = math.log(ka / k) / (ka - k)
    t = AUC_WINDOW_H
    auc_mg_h_l = f * gum.nicotine_mg / cl * (1.0 - (ka * math.exp(-k * t) - k * math.exp(-ka * t)) / (ka - k))
    mw = drug.molecular_weight_g_per_mol
    factors = (
        Factor("gum nicotine content", gum.nicotine_mg, "mg", "Herland 2020 Table 1; Digard et al. 2013"),
        Factor(
            "fraction extracted from the gum",
            gum.fraction_released,
            "",
            "Clin Pharmacol Ther 1987;41:467 (PMID 3829583)",
        ),
        Factor("in-vitro CLint,u (scaled)", in_vitro.clint_u_ml_min_per_kg, "mL/min/kg", "; ".join(in_vitro.sources)),
        Factor("fu_p", drug.fu_p, "", drug.sources["properties.fu_p"]),
        Factor("BP", drug.bp, "", drug.sources["properties.bp"]),
        Factor("Vss", drug.v_l_per_kg, "L/kg", drug.sources["properties.v"]),
        Factor("ka", drug.ka_per_h, "1/h", drug.sources["properties.ka"]),
        Factor("renal CL", drug.cl_renal_ref_l_per_h, "L/h", drug.sources["properties.fe"]),
        Factor("predicted CL (plasma)", cl, "L/h", "well-stirred liver + renal, MODELS.md §3"),
        Factor("predicted F", f, "", "released × Fa·Fg·Fh"),
    )
    return NicotinePrediction(
        cmax_um=_um(cmax_mg_l, mw),
        tmax_min=tmax_h * 60.0,
        auc_0_2h_um_h=_um(auc_mg_h_l, mw),
        cl_plasma_l_per_h=cl,
        f_oral=f,
        factors=factors,
    )
