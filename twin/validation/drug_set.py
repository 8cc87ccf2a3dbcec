"""Predicted vs observed clearance for the library's drugs, in the manner of PK-Sim's evaluation.

For each drug with both a published in-vitro CLint (``[in_vitro]``) and an observed plasma
clearance (``properties.cl_plasma``), the forward chain of MODELS.md §3 predicts plasma CL:

    CLh,blood = well-stirred(Qh = 20.7 mL/min/kg, fub = fu_p/BP, CLint,u)
    CL,plasma = CLh,blood × BP + CLr        (CLr observed: fe × CL, the kidney is not scaled)

and the fold error is predicted/observed. The usual acceptance is the fraction within
2-fold (and 3-fold) of observed. Drugs without an in-vitro value are listed as excluded.
"""

from __future__ import annotations

from dataclasses import dataclass

from twin.drugs import known_drugs, load_drug
from twin.drugs.library import LIBRARY, REFERENCE_WEIGHT_KG, Drug
from twin.ivive import DEFAULT_SCALING, well_stirred
from twin.validation.in_vitro import InVitroClearance, drug_file, entry_value, in_vitro_clearance


@dataclass(frozen=True)
class ClearanceCheck:
    drug: str
    system: str
    clint_u_ml_min_per_kg: float
    predicted_cl_ml_min_per_kg: float
    observed_cl_ml_min_per_kg: float

    @property
    def fold_error(self) -> float:
        """predicted / observed (below 1: under-prediction)."""
        return self.predicted_cl_ml_min_per_kg / self.observed_cl_ml_min_per_kg

    def within(self, fold: float) -> bool:
        return 1.0 / fold <= self.fold_error <= fold


@dataclass(frozen=True)
class DrugSetResult:
    rows: tuple[ClearanceCheck, ...]
    excluded: tuple[str, ...]  # "drug: reason"

    def fraction_within(self, fold: float) -> float:
        return sum(row.within(fold) for row in self.rows) / len(self.rows)


def predicted_plasma_clearance(drug: Drug, clint_u_ml_min_per_kg: float) -> float:
    """Plasma CL (mL/min/kg) of the reference adult from an unbound hepatic CLint (module docstring)."""
    qh = DEFAULT_SCALING.qh_ml_min_per_kg
    clh_blood = float(well_stirred(qh, drug.fu_p / drug.bp, clint_u_ml_min_per_kg))
    renal_ml_min_per_kg = drug.cl_renal_ref_l_per_h * 1000.0 / 60.0 / REFERENCE_WEIGHT_KG
    return clh_blood * drug.bp + renal_ml_min_per_kg


def _observed_cl_ml_min_per_kg(name: str, folder) -> float | None:
    path, data = drug_file(name, folder)
    properties = data.get("properties", {})
    if "cl_plasma" not in properties:
        return None
    return entry_value(path, properties, "properties", "cl_plasma", "mL/min/kg")[0]


def drug_set_check(names: list[str] | None = None, folder=LIBRARY) -> DrugSetResult:
    rows: list[ClearanceCheck] = []
    excluded: list[str] = []
    for name in names or known_drugs(folder):
        observed = _observed_cl_ml_min_per_kg(name, folder)
        in_vitro: InVitroClearance | None = in_vitro_clearance(name, folder)
        if observed is None or in_vitro is None:
            excluded.append(f"{name}: no {'observed clearance' if observed is None else 'published in-vitro CLint'}")
            continue
        drug = load_drug(name, folder)
        rows.append(
            ClearanceCheck(
                drug=name,
                system=in_vitro.system,
                clint_u_ml_min_per_kg=in_vitro.clint_u_ml_min_per_kg,
                predicted_cl_ml_min_per_kg=predicted_plasma_clearance(drug, in_vitro.clint_u_ml_min_per_kg),
                observed_cl_ml_min_per_kg=observed,
            )
        )
    return DrugSetResult(rows=tuple(rows), excluded=tuple(excluded))
