"""The designer's posterior: log-scale mean and covariance of the estimated parameters.

Built from a FitRecord (estimates, RSE % = 100 × log-scale SD, correlation matrix), from a
mean and covariance given directly, or from MCMC samples. Draws are on the log scale and
clipped to the catalogue bounds, so the twin is never asked about impossible parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from calibration.errors import CalibrationError
from calibration.io.record import FitRecord
from twin.catalogue import get_model

ERROR_PARAMETERS = ("prop_cv", "add_sd")


@dataclass
class Posterior:
    model: str
    names: tuple[str, ...]  # estimated parameters, in order
    mean_log: np.ndarray
    covariance_log: np.ndarray
    fixed: dict[str, float] = field(default_factory=dict)  # every other parameter the model needs
    sigma: dict[str, float] = field(default_factory=dict)  # residual SDs, as in FitRecord.sigma
    samples_log: np.ndarray | None = None  # MCMC draws (N, P), when the posterior came from a sampler

    def __post_init__(self) -> None:
        self.names = tuple(self.names)
        self.mean_log = np.asarray(self.mean_log, dtype=float).reshape(len(self.names))
        self.covariance_log = np.asarray(self.covariance_log, dtype=float).reshape(len(self.names), len(self.names))
        if not np.all(np.isfinite(self.covariance_log)) or np.linalg.eigvalsh(self.covariance_log).min() <= 0:
            raise CalibrationError(
                "the posterior covariance is not positive definite; refit with more data, "
                "a prior, or fewer estimated parameters before designing"
            )

    @property
    def sd_log(self) -> np.ndarray:
        return np.sqrt(np.diag(self.covariance_log))

    @property
    def estimate(self) -> dict[str, float]:
        return dict(zip(self.names, np.exp(self.mean_log)))

    def draws(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` log-scale parameter vectors (n, P); n = 1 is the point estimate."""
        if n <= 1:
            return self.mean_log[None].copy()
        rng = np.random.default_rng(seed)
        if self.samples_log is not None:
            picked = self.samples_log[rng.choice(len(self.samples_log), n, replace=len(self.samples_log) < n)]
        else:
            picked = rng.multivariate_normal(self.mean_log, self.covariance_log, size=n, method="cholesky")
        return np.clip(picked, *self._log_bounds())

    def _log_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        spec = get_model(self.model)
        low = np.log([spec.parameter(n).lower for n in self.names])
        high = np.log([spec.parameter(n).upper for n in self.names])
        return low, high

    def parameters(self, log_values: np.ndarray) -> dict[str, float]:
        return {**self.fixed, **dict(zip(self.names, np.exp(log_values)))}

    @classmethod
    def from_samples(
        cls,
        model: str,
        names: Sequence[str],
        samples: np.ndarray,
        *,
        log_scale: bool = False,
        fixed: Mapping[str, float] | None = None,
        sigma: Mapping[str, float] | None = None,
    ) -> "Posterior":
        """MCMC samples (N, P), natural scale unless ``log_scale``."""
        samples = np.asarray(samples, dtype=float)
        logged = samples if log_scale else np.log(samples)
        return cls(
            model,
            tuple(names),
            logged.mean(axis=0),
            np.cov(logged, rowvar=False).reshape(len(names), -1),
            dict(fixed or {}),
            dict(sigma or {}),
            samples_log=logged,
        )

    @classmethod
    def from_record(cls, record: FitRecord) -> "Posterior":
        names = tuple(record.theta)
        if not names:
            raise CalibrationError("the fit has no estimated parameters; nothing to design for")
        missing = [n for n in names if record.theta[n].rse_percent is None]
        if missing:
            raise CalibrationError(
                f"the fit has no standard error for {', '.join(missing)} (see its warnings); "
                "the designer needs a posterior: refit with a prior (MAP) or more data, "
                "or fix those parameters"
            )
        sd = np.array([record.theta[n].rse_percent / 100 for n in names])
        correlation = _correlation(record, names)
        mean = np.log([record.theta[n].estimate for n in names])
        fixed = dict((record.data_selection or {}).get("fixed", {}))
        return cls(record.model, names, mean, correlation * np.outer(sd, sd), fixed, dict(record.sigma))

    def residual(
        self, observable: str, override: Mapping[str, Mapping[str, float]] | None = None
    ) -> tuple[float, float]:
        """(additive SD, proportional CV) of ``observable``: the space's override, else the fit's sigma."""
        if override and observable in override:
            given = override[observable]
            return float(given.get("add_sd", 0.0)), float(given.get("prop_cv", 0.0))
        found = {}
        for kind in ERROR_PARAMETERS:
            for key in (f"{observable}.{kind}", kind):
                if key in self.sigma:
                    found[kind] = float(self.sigma[key])
                    break
        if not found:
            raise CalibrationError(
                f"the fit has no residual error for {observable}; give it in the design space, "
                f"e.g. [error.{observable}] prop_cv = 0.15"
            )
        return found.get("add_sd", 0.0), found.get("prop_cv", 0.0)


def _correlation(record: FitRecord, names: tuple[str, ...]) -> np.ndarray:
    table = record.correlation or {}
    matrix, listed = table.get("matrix"), list(table.get("names") or [])
    if matrix is None or not set(names) <= set(listed):
        return np.eye(len(names))  # no correlations recorded: treat the estimates as independent
    index = [listed.index(n) for n in names]
    return np.asarray(matrix, dtype=float)[np.ix_(index, index)]
