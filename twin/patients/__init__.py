"""Virtual patients: covariates, CrCl, CPIC genotypes, proteomics, DDI, exposure, populations.

MODELS.md §3 is the contract; each module's docstring states the equations it implements
and the choices made where MODELS.md is silent.
"""

from twin.patients.clearance import IndividualPK, enzyme_capacity, individual_pk, patient_pk
from twin.patients.covariates import Comedication, Patient, PatientError, cockcroft_gault_ml_per_min
from twin.patients.dosing import (
    DoseRecommendation,
    Target,
    TargetError,
    parse_target,
    probability_of_target_attainment,
    recommend_dose,
    toxicity_margin,
)
from twin.patients.exposure import Exposure, concentration_mg_per_l, exposure
from twin.patients.genotypes import (
    Diplotype,
    GenotypeError,
    activity_ratio,
    activity_score,
    parse_diplotype,
    phenotype,
)
from twin.patients.patient_file import load_patient, patient_from_dict
from twin.patients.population import PopulationSpec
from twin.patients.predict import Prediction, predict
from twin.patients.regimen import Regimen, RegimenError, parse_regimen
from twin.patients.runner import PopulationSummary, run_population

__all__ = [
    "Comedication",
    "Diplotype",
    "DoseRecommendation",
    "Exposure",
    "GenotypeError",
    "IndividualPK",
    "Patient",
    "PatientError",
    "PopulationSpec",
    "PopulationSummary",
    "Prediction",
    "Regimen",
    "RegimenError",
    "Target",
    "TargetError",
    "activity_ratio",
    "activity_score",
    "cockcroft_gault_ml_per_min",
    "concentration_mg_per_l",
    "enzyme_capacity",
    "exposure",
    "individual_pk",
    "load_patient",
    "parse_diplotype",
    "parse_regimen",
    "parse_target",
    "patient_from_dict",
    "patient_pk",
    "phenotype",
    "predict",
    "probability_of_target_attainment",
    "recommend_dose",
    "run_population",
    "toxicity_margin",
]
