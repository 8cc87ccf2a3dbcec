"""The published PK reference datasets (../shared/reference/pk/README.md), loaded as the fits against NONMEM use them.

One loader for the tests (tests/calibration/test_population_reference.py), the benchmarks
(benchmarks/bench_fit_pk.py, bench_foce_engines.py) and the many-start population tests:

- ``phenobarbital()``: Pharmpy's pheno_real.mod on ``pheno_sd.csv`` — TVCL = θ1·WGT,
  TVV = θ2·WGT·(1 + θ3·[APGR < 5]), log-normal η on CL and V, proportional error
  (NONMEM 7 FOCE-I OFV 586.27606);
- ``acop_csv(name, single_dose, folder)``: the ACOP ``Bolus_1CPT.csv`` / ``Oral_1CPT.csv`` rows of
  one design (SD = 1 or 0), written where ``fit_nonmem`` can read them (SS = 99 becomes 0);
- ``acop_oral_md()``: the oral multiple-dose rows as a population case (NONMEM OFV 43707.117).

The data live beside the checkout (``../shared/reference/pk``) or where ``CHIPTWIN_REFERENCE_PK`` says;
a missing file is a ``ReferenceDataMissing`` naming the path (tests skip on it, loudly).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from calibration.errors import CalibrationError
from calibration.estimate.error_models import ErrorModel
from calibration.estimate.population_model import PopulationModel, Predict, lognormal_individual
from calibration.io.datasets import load_nonmem
from calibration.io.nonmem import NonmemProblem
from twin.dataset import read_dataset

NONMEM_OFV = {"pheno": 586.27606, "acop_oral_md": 43707.117}


class ReferenceDataMissing(CalibrationError):
    """A reference dataset is not where the loader looks."""


@dataclass
class ReferenceCase:
    """A population fit as the reference run set it up: ``model(predict)`` on the problem's data."""

    problem: NonmemProblem
    model: Callable[[Predict], PopulationModel]
    theta0: dict[str, float]
    sigma0: np.ndarray | None


def reference_pk_dir() -> Path:
    given = os.environ.get("CHIPTWIN_REFERENCE_PK")
    return Path(given) if given else Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "pk"


def reference_file(name: str) -> Path:
    path = reference_pk_dir() / name
    if not path.exists():
        raise ReferenceDataMissing(
            f"reference data {path} missing; fix: put ../shared/reference/pk beside the checkout "
            "or set CHIPTWIN_REFERENCE_PK to its folder"
        )
    return path


def phenobarbital() -> ReferenceCase:
    """Pharmpy's pheno_real.mod: TVCL = θ1·WGT, TVV = θ2·WGT·(1 + θ3·[APGR < 5]), proportional error."""
    data = read_dataset(reference_file("pheno_sd.csv"))
    problem = NonmemProblem(data, "iv_1cpt", ("cl", "v"))
    first = data.groupby("ID", sort=False).first()
    covariates = _PhenoCovariates(first["WT"].to_numpy(), first["APGR"].to_numpy())

    def model(predict: Predict) -> PopulationModel:
        return PopulationModel(
            ("theta1", "theta2", "theta3"),
            ("cl", "v"),
            covariates,
            predict,
            ErrorModel("prop"),
            phi_names=("cl", "v"),
        )

    return ReferenceCase(problem, model, {"theta1": 0.005, "theta2": 1.0, "theta3": 0.1}, np.array([0.1]))


@dataclass(frozen=True)
class _PhenoCovariates:
    """φ = (CL, V) of pheno_real.mod from θ, η and each subject's weight and Apgar score."""

    weight: np.ndarray
    apgar: np.ndarray

    def __call__(self, theta: np.ndarray, eta: np.ndarray) -> np.ndarray:
        cl = theta[0] * self.weight * np.exp(eta[:, 0])
        v = theta[1] * self.weight * (1 + theta[2] * (self.apgar < 5)) * np.exp(eta[:, 1])
        return np.stack([cl, v], axis=1)


def acop_csv(name: str, single_dose: bool, folder: Path) -> Path:
    """The rows of one design of an ACOP file, written to ``folder`` for ``fit_nonmem``."""
    frame = pd.read_csv(reference_file(name))
    frame = frame[frame["SD"] == (1 if single_dose else 0)].copy()
    # SS = 99 marks "not a steady-state record" in these files (NONMEM accepts only 0/1/2):
    # the single-dose rows carry it throughout, and the repeated doses before each SS=1 dose.
    frame.loc[frame["SS"] == 99, "SS"] = 0
    path = Path(folder) / name
    frame.to_csv(path, index=False)
    return path


def acop_oral_md() -> ReferenceCase:
    """ACOP ``Oral_1CPT.csv`` multiple-dose rows (SD = 0, 120 subjects, steady state): oral_1cpt,
    log-normal η on ka, CL and V, proportional error — fit_nonmem's population branch, restated."""
    with tempfile.TemporaryDirectory() as folder:
        data, _ = load_nonmem(acop_csv("Oral_1CPT.csv", False, Path(folder)))
    names = ("ka", "cl", "v")
    problem = NonmemProblem(data, "oral_1cpt", names)

    def model(predict: Predict) -> PopulationModel:
        return PopulationModel(names, names, lognormal_individual(names, names), predict, ErrorModel("prop"))

    return ReferenceCase(problem, model, {"ka": 1.0, "cl": 4.0, "v": 70.0}, None)
