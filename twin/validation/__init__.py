"""Published checks of the chip→human chain: Herland 2020's nicotine gum (Table 1) and a
PK-Sim-style drug-set clearance check (predicted vs observed CL, fraction within 2- and 3-fold).

Every number comes from a drug file of the library (twin/drugs/*.toml, each with its
source) or is a named constant below with its citation; assumptions say so in their source.
"""

from twin.validation.drug_set import ClearanceCheck, DrugSetResult, drug_set_check, predicted_plasma_clearance
from twin.validation.herland import HERLAND_TABLE1_GUM, GumDose, HerlandGumRow, NicotinePrediction, predict_nicotine_gum
from twin.validation.in_vitro import InVitroClearance, in_vitro_clearance

__all__ = [
    "ClearanceCheck",
    "DrugSetResult",
    "GumDose",
    "HERLAND_TABLE1_GUM",
    "HerlandGumRow",
    "InVitroClearance",
    "NicotinePrediction",
    "drug_set_check",
    "in_vitro_clearance",
    "predict_nicotine_gum",
    "predicted_plasma_clearance",
]
