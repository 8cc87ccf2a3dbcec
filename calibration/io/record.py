"""A fit is a record (MODELS.md §4): everything needed to judge it and to use it later."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from calibration.estimate.error_models import LOG_2PI


@dataclass
class FitRecord:
    model: str
    model_version: str
    method: str  # individual | pooled | population-foce-i
    converged: bool
    minus2ll: float  # without the N·log 2π constant (NONMEM's OFV convention)
    n_observations: int
    n_subjects: int
    n_estimated: int
    theta: dict[str, dict[str, Any]]
    sigma: dict[str, float]
    omega: dict[str, dict[str, float]] = field(default_factory=dict)
    individual: dict[str, dict[str, float]] = field(default_factory=dict)
    correlation: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    data_selection: dict[str, Any] = field(default_factory=dict)
    wall_time_s: float = 0.0

    @property
    def minus2ll_with_constant(self) -> float:
        return self.minus2ll + self.n_observations * LOG_2PI

    @property
    def aic(self) -> float:
        """AIC and BIC use −2LL *with* the constant (the true likelihood)."""
        return self.minus2ll_with_constant + 2 * self.n_estimated

    @property
    def bic(self) -> float:
        return self.minus2ll_with_constant + self.n_estimated * math.log(max(self.n_observations, 1))

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document.update(minus2ll_with_constant=self.minus2ll_with_constant, aic=self.aic, bic=self.bic,
                        minus2ll_note="minus2ll excludes N·log(2π); minus2ll_with_constant includes it")
        return document

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=_plain)

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> "FitRecord":
        known = {k: v for k, v in document.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
