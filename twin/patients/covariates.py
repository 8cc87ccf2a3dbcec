"""A virtual patient's covariates, and the two covariate models of MODELS.md §3 built on them.

- Renal function: Cockcroft–Gault CrCl = (140 − age)·BW / (72·SCr) mL/min, × 0.85 for
  women (age in years, BW in kg, SCr in mg/dL).
- Proteomics: abundance in pmol enzyme per mg microsomal protein, relative to the
  reference abundances below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Mapping

import numpy as np

from twin.errors import InvalidValueError, TwinError
from twin.patients.genotypes import Diplotype

Sex = Literal["male", "female"]

# Mean abundances in adult human liver microsomes, pmol/mg protein (approximate:
# Rowland Yeo et al. 2004 / Simcyp defaults, rounded). A patient's measured abundance is
# read relative to these.
REFERENCE_ABUNDANCE_PMOL_PER_MG = {"CYP3A4": 137.0, "CYP2D6": 8.0, "CYP2C19": 14.0, "CYP1A2": 52.0, "CYP2C9": 73.0}


class PatientError(TwinError):
    """A patient description the twin cannot use."""


@dataclass(frozen=True)
class Comedication:
    """A competitive inhibitor the patient takes, at its unbound concentration at the liver."""

    drug: str
    unbound_um: float


@dataclass(frozen=True)
class Patient:
    age_years: float
    sex: Sex
    weight_kg: float
    scr_mg_per_dl: float
    genotypes: Mapping[str, Diplotype] = field(default_factory=dict)
    abundance_pmol_per_mg: Mapping[str, float] = field(default_factory=dict)
    comedications: tuple[Comedication, ...] = ()
    id: str = ""

    def __post_init__(self) -> None:
        if self.sex not in ("male", "female"):
            raise PatientError(f"sex must be 'male' or 'female'; got {self.sex!r}")
        for name, value, low, high in (
            ("age", self.age_years, 18, 120),
            ("weight", self.weight_kg, 20, 400),
            ("serum creatinine", self.scr_mg_per_dl, 0.1, 20),
        ):
            if not low <= value <= high:
                raise InvalidValueError(
                    f"{name} {value} is outside the range the covariate models cover "
                    f"({low}–{high}; Cockcroft–Gault is for adults)"
                )
        for enzyme in self.abundance_pmol_per_mg:
            reference_abundance(enzyme)

    @property
    def crcl_ml_per_min(self) -> float:
        return float(
            cockcroft_gault_ml_per_min(self.age_years, self.weight_kg, self.scr_mg_per_dl, self.sex == "female")
        )


def cockcroft_gault_ml_per_min(age_years, weight_kg, scr_mg_per_dl, female):
    """CrCl (mL/min) = (140 − age)·BW / (72·SCr), × 0.85 for women; vectorised."""
    crcl = (140.0 - np.asarray(age_years)) * weight_kg / (72.0 * np.asarray(scr_mg_per_dl))
    return np.where(female, 0.85 * crcl, crcl)


def reference_abundance(enzyme: str) -> float:
    try:
        return REFERENCE_ABUNDANCE_PMOL_PER_MG[enzyme]
    except KeyError:
        known = ", ".join(REFERENCE_ABUNDANCE_PMOL_PER_MG)
        raise PatientError(f"no reference abundance for enzyme {enzyme!r}; known: {known}") from None
