"""One patient, one drug, one regimen: exposure, toxicity margin and a dose recommendation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from twin.drugs import Drug
from twin.patients.clearance import IndividualPK, patient_pk
from twin.patients.covariates import Patient
from twin.patients.dosing import DoseRecommendation, Target, recommend_dose, toxicity_margin
from twin.patients.exposure import Exposure, exposure
from twin.patients.regimen import Regimen


@dataclass(frozen=True)
class Prediction:
    drug: str
    regimen: Regimen
    crcl_ml_per_min: float
    pk: IndividualPK
    exposure: Exposure
    toxicity_margin: float | None
    recommendation: DoseRecommendation | None
    target: Target | None
    assumptions: tuple[str, ...]

    def table(self) -> dict[str, tuple[float, str]]:
        """Named values with their units, scalars for this one patient."""
        rows = {
            "CrCl (Cockcroft–Gault)": (self.crcl_ml_per_min, "mL/min"),
            "CL": (float(self.pk.cl_l_per_h[0]), "L/h"),
            "V": (float(self.pk.v_l[0]), "L"),
        }
        if self.regimen.route == "oral":
            rows["F"] = (float(self.pk.f_oral[0]), "")
        units = {"auc": "mg·h/L", "c": "mg/L"}
        for name in self.exposure.__dataclass_fields__:
            rows[name] = (float(getattr(self.exposure, name)[0]), units["auc" if name.startswith("auc") else "c"])
        if self.toxicity_margin is not None:
            rows["toxicity margin (chip EC50 / unbound Cmax)"] = (self.toxicity_margin, "")
        return rows


def predict(
    drug: Drug,
    patient: Patient,
    regimen: Regimen,
    target: Target | None = None,
    strengths_mg: Sequence[float] | None = None,
) -> Prediction:
    pk, assumptions = patient_pk(drug, patient)
    result = exposure(pk, regimen)
    margin = toxicity_margin(drug.ec50_mg_per_l, result)
    recommendation = None if target is None else recommend_dose(target, regimen.dose_mg, result, strengths_mg)
    return Prediction(
        drug=drug.name,
        regimen=regimen,
        crcl_ml_per_min=patient.crcl_ml_per_min,
        pk=pk,
        exposure=result,
        toxicity_margin=None if margin is None else float(margin[0]),
        recommendation=recommendation,
        target=target,
        assumptions=tuple(assumptions),
    )
