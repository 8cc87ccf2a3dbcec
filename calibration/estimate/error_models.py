"""Residual error models (MODELS.md §4): additive, proportional, combined.

The variance of an observation y around the prediction f is
    additive:      V = a²
    proportional:  V = (b·f)²
    combined:      V = a² + (b·f)²          (NONMEM's usual "combined 2" form)
and −2 log L of one observation is  log V + (y − f)²/V  (+ log 2π with the constant).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibration.errors import CalibrationError

LOG_2PI = float(np.log(2 * np.pi))
_FLOOR = 1e-300  # keeps log V finite when a proportional model predicts exactly zero


@dataclass(frozen=True)
class ErrorModel:
    kind: str  # "add" | "prop" | "comb"

    def __post_init__(self) -> None:
        if self.kind not in ("add", "prop", "comb"):
            raise CalibrationError(f"unknown error model {self.kind!r}; use add, prop or comb")

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return {"add": ("add_sd",), "prop": ("prop_cv",), "comb": ("add_sd", "prop_cv")}[self.kind]

    def variance(self, f: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """V for predictions ``f``; ``sigma`` holds the SDs in ``parameter_names`` order."""
        if self.kind == "add":
            return np.full_like(f, sigma[0] ** 2) + _FLOOR
        if self.kind == "prop":
            return (sigma[0] * f) ** 2 + _FLOOR
        return sigma[0] ** 2 + (sigma[1] * f) ** 2 + _FLOOR

    def dvariance_df(self, f: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        if self.kind == "add":
            return np.zeros_like(f)
        return 2 * sigma[-1] ** 2 * f

    def default_sigma(self, dv: np.ndarray) -> np.ndarray:
        scale = float(np.nanstd(dv)) or 1.0
        return {"add": np.array([0.2 * scale]), "prop": np.array([0.2]), "comb": np.array([0.1 * scale, 0.1])}[
            self.kind
        ]


def minus2ll_terms(y: np.ndarray, f: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """Per-observation −2 log L without the log 2π constant."""
    return np.log(variance) + (y - f) ** 2 / variance


@dataclass(frozen=True)
class Residuals:
    """One error model per observable (drug in µM and oxygen in % need their own SDs).

    ``groups`` names the observable of each observation; ``models`` the error model of each
    observable. The SD parameters are named ``<observable>.<name>`` (plain ``<name>`` when
    there is a single unnamed group).
    """

    groups: np.ndarray
    models: dict[str, ErrorModel]

    @classmethod
    def single(cls, model: ErrorModel, n: int) -> "Residuals":
        return cls(np.full(n, "", dtype=object), {"": model})

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(
            name if group == "" else f"{group}.{name}"
            for group, model in self.models.items()
            for name in model.parameter_names
        )

    def _slices(self):
        start = 0
        for group, model in self.models.items():
            size = len(model.parameter_names)
            yield group, model, slice(start, start + size)
            start += size

    def variance(self, f: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        variance = np.empty_like(f, dtype=float)
        for group, model, part in self._slices():
            rows = self.groups == group
            variance[rows] = model.variance(f[rows], sigma[part])
        return variance

    def default_sigma(self, dv: np.ndarray) -> np.ndarray:
        return np.concatenate([model.default_sigma(dv[self.groups == group]) for group, model, _ in self._slices()])
