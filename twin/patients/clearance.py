"""A drug's PK parameters in one patient or many: CLint by enzyme, well-stirred liver, kidney.

Everything is vectorised over patients (numpy arrays of covariates; scalars broadcast),
so the single-patient prediction and the population share this one code path:

    capacity  = (1 − Σfm) + Σ_e fm_e · activity_e / (1 + Σ_j I_u,j / Ki_e,j)
    CLint,u   = CLint,u per kg × BW × capacity × exp(η_CL)
    CLh,b     = well-stirred(Qh = 20.7 mL/min/kg × BW, fub, CLint,u);   CLh,p = CLh,b × BP
    CLr       = CLr,ref × CrCl / 100 mL/min × exp(η_CL)
    CL        = CLh,p + CLr;   F = Fa·Fg·(1 − CLh,b/Qh);   V = V/kg × BW × exp(η_V)

η_CL multiplies intrinsic (not total) clearance so that CL stays below liver blood flow
and F stays consistent with CL, as population PBPK simulators do.
``activity_e`` is the genotype's activity ratio (CPIC score / 2) or, where the patient has
a measured abundance, abundance / reference abundance — the measurement replaces the
genotype for that enzyme, so a poor metaboliser's low protein is not counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from twin.drugs import Drug, load_inhibitor
from twin.drugs.library import REFERENCE_CRCL_ML_MIN
from twin.ivive import DEFAULT_SCALING, well_stirred
from twin.patients.covariates import Patient, reference_abundance
from twin.patients.genotypes import GENE_VALUES, activity_ratio


@dataclass(frozen=True)
class IndividualPK:
    """One-compartment parameters per patient (arrays of equal length, or scalars)."""

    cl_l_per_h: np.ndarray
    v_l: np.ndarray
    ka_per_h: np.ndarray
    f_oral: np.ndarray
    fu_p: float


def inhibition_divisors(comedications, fm: Mapping[str, float]) -> dict[str, float]:
    """Competitive DDI: 1 + Σ_j I_u,j/Ki_j for each enzyme of ``fm`` an inhibitor hits."""
    divisors = {enzyme: 1.0 for enzyme in fm}
    for comedication in comedications:
        for enzyme, ki_um in load_inhibitor(comedication.drug).ki_um.items():
            if enzyme in divisors:
                divisors[enzyme] += comedication.unbound_um / ki_um
    return divisors


def enzyme_capacity(
    fm: Mapping[str, float], activity: Mapping[str, np.ndarray | float], divisors: Mapping[str, float] | None = None
):
    """Hepatic CLint relative to a normal metaboliser with no inhibitor (1 = reference)."""
    divisors = divisors or {}
    capacity = 1.0 - sum(fm.values())
    for enzyme, share in fm.items():
        capacity = capacity + share * np.asarray(activity.get(enzyme, 1.0)) / divisors.get(enzyme, 1.0)
    return capacity


def patient_activity(patient: Patient, fm: Mapping[str, float]) -> tuple[dict[str, float], list[str]]:
    """Activity ratio per enzyme of ``fm`` and the assumptions made (unknown genotype → NM)."""
    activity: dict[str, float] = {}
    assumptions: list[str] = []
    for enzyme in fm:
        if enzyme in patient.abundance_pmol_per_mg:
            activity[enzyme] = patient.abundance_pmol_per_mg[enzyme] / reference_abundance(enzyme)
        elif enzyme in patient.genotypes:
            activity[enzyme] = activity_ratio(patient.genotypes[enzyme])
        elif enzyme in GENE_VALUES:
            assumptions.append(f"{enzyme} genotype not given: normal metaboliser assumed")
    return activity, assumptions


def individual_pk(
    drug: Drug, weight_kg, crcl_ml_per_min, capacity, *, eta_cl=0.0, eta_v=0.0, eta_ka=0.0
) -> IndividualPK:
    """PK parameters from covariates, enzyme capacity and random effects (module docstring)."""
    weight_kg = np.asarray(weight_kg, dtype=float)
    exp_eta_cl = np.exp(eta_cl)
    clint_u = drug.clint_u_l_per_h_per_kg * weight_kg * capacity * exp_eta_cl
    qh = DEFAULT_SCALING.qh_l_per_h_per_kg() * weight_kg
    clh_blood = well_stirred(qh, drug.fu_p / drug.bp, clint_u)
    cl_renal = drug.cl_renal_ref_l_per_h * np.asarray(crcl_ml_per_min) / REFERENCE_CRCL_ML_MIN * exp_eta_cl
    return IndividualPK(
        cl_l_per_h=clh_blood * drug.bp + cl_renal,
        v_l=drug.v_l_per_kg * weight_kg * np.exp(eta_v),
        ka_per_h=drug.ka_per_h * np.exp(eta_ka),
        f_oral=drug.fa * drug.fg * (1.0 - clh_blood / qh),
        fu_p=drug.fu_p,
    )


def patient_pk(drug: Drug, patient: Patient) -> tuple[IndividualPK, list[str]]:
    """The typical-value PK of one patient (no random effects), with assumptions made."""
    activity, assumptions = patient_activity(patient, drug.fm)
    capacity = enzyme_capacity(drug.fm, activity, inhibition_divisors(patient.comedications, drug.fm))
    pk = individual_pk(drug, np.array([patient.weight_kg]), np.array([patient.crcl_ml_per_min]), capacity)
    return pk, assumptions
