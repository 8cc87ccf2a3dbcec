"""The population model and data of a FOCE-I fit: typed records and the helpers they share.

A ``PopulationModel`` maps (θ, η) to each subject's individual parameters φ (``individual``),
φ to predictions on the data grid (``predict``), and holds the residual error model (one
``ErrorModel``, or ``Residuals`` with one per endpoint). ``PopulationData`` is the observations
padded to a rectangle. The objective over them is ``calibration.estimate.foce.Foce``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from calibration.errors import NoObservationsError
from calibration.estimate.error_models import ErrorModel, Residuals

Predict = Callable[[np.ndarray], np.ndarray]  # φ (n_subjects, n_phi) → f (n_subjects, n_obs_max)
Individual = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (θ, η (n_subjects, n_eta)) → φ


@dataclass
class PopulationModel:
    theta_names: tuple[str, ...]
    eta_names: tuple[str, ...]
    individual: Individual
    predict: Predict
    error: ErrorModel | Residuals  # Residuals: ``groups`` shaped like the data (one error model per endpoint)
    phi_names: tuple[str, ...] = ()  # names of the individual parameters; default: theta_names
    # φ → (f, ∂f/∂ψ, ∂²f/∂ψ²) in ψ = log φ, or None where it cannot (then: differences of predict).
    # Default: found for a plain ``NonmemProblem.predict`` (twin.pk.fast closed forms).
    predict_derivatives: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray] | None] | None = None

    @property
    def individual_names(self) -> tuple[str, ...]:
        return self.phi_names or self.theta_names


@dataclass
class PopulationData:
    """Observations padded to a rectangle; ``mask`` marks the real ones."""

    ids: list
    dv: np.ndarray
    mask: np.ndarray

    def __post_init__(self) -> None:
        if not self.mask.any():
            raise NoObservationsError("the dataset has no observations to fit (all rows are doses or MDV=1)")

    @property
    def n_observations(self) -> int:
        return int(self.mask.sum())


class LognormalIndividual:
    """φ_k = θ_k · exp(η_k) for parameters with a random effect, φ_k = θ_k otherwise.

    ψ = log φ is linear in (η, log θ), so its derivatives are constants (``derivatives``):
    the FOCE-I gradient uses them instead of differences of the function.
    """

    def __init__(self, theta_names: tuple[str, ...], eta_names: tuple[str, ...]) -> None:
        self.columns = [theta_names.index(name) for name in eta_names]
        self.n_theta = len(theta_names)

    def __call__(self, theta: np.ndarray, eta: np.ndarray) -> np.ndarray:
        phi = np.repeat(theta[None, :], eta.shape[0], axis=0)
        phi[:, self.columns] *= np.exp(eta)
        return phi

    def derivatives(self, eta_only: bool) -> tuple[np.ndarray, None]:
        """∂ψ/∂u (r, k) for u = η (``eta_only``) or (η, log θ); the second derivatives are zero (None)."""
        q = len(self.columns)
        first = np.zeros((self.n_theta, q if eta_only else q + self.n_theta))
        first[self.columns, np.arange(q)] = 1.0
        if not eta_only:
            first[np.arange(self.n_theta), q + np.arange(self.n_theta)] = 1.0
        return first, None


def lognormal_individual(theta_names: tuple[str, ...], eta_names: tuple[str, ...]) -> Individual:
    """φ_k = θ_k · exp(η_k) for parameters with a random effect, φ_k = θ_k otherwise."""
    return LognormalIndividual(theta_names, eta_names)


def dvariance_df(error: ErrorModel | Residuals, f: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """∂V/∂f per observation; with Residuals, each endpoint's own model and SDs."""
    if isinstance(error, ErrorModel):
        return error.dvariance_df(f, sigma)
    out, start = np.zeros_like(f, dtype=float), 0
    for group, model in error.models.items():
        rows, size = error.groups == group, len(model.parameter_names)
        out[rows] = model.dvariance_df(f[rows], sigma[start : start + size])
        start += size
    return out


def default_sigma(error: ErrorModel | Residuals, data: PopulationData) -> np.ndarray:
    if isinstance(error, ErrorModel):
        return error.default_sigma(data.dv[data.mask])
    return Residuals(error.groups[data.mask], error.models).default_sigma(data.dv[data.mask])


def closed_forms(predict: Callable) -> Callable | None:
    """The closed-form prediction derivatives a problem offers for its own ``predict`` (None if it offers none)."""
    offer = getattr(getattr(predict, "__self__", None), "closed_form_derivatives", None)
    return offer() if callable(offer) else None
