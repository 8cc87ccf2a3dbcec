"""Population fits by FOCE-I (first-order conditional estimation with interaction).

Replicate chips are a population just as patients are. For subject i with random
effects η_i ~ N(0, Ω) and observations y_ij ~ N(f_ij(θ, η_i), V_ij), V depending on f
(the interaction), the objective (NONMEM's OFV, −2 log L without the N·log 2π constant) is

    OFV = Σ_i [ Σ_j (log V_ij + (y_ij − f_ij)²/V_ij) + η̂_iᵀ Ω⁻¹ η̂_i
                + log|Ω| + log|Ω⁻¹ + Σ_j (g_ij g_ijᵀ / V_ij + ½ h_ij h_ijᵀ / V_ij²)| ]

evaluated at each subject's conditional mode η̂_i, with g = ∂f/∂η and h = ∂V/∂η there:
a Laplace approximation whose Hessian is the expected information of the data (the
h-term is the interaction's own share). This form reproduces NONMEM 7's FOCE-I OFV for
phenobarbital (586.27606) to the printed digits; without the h-term it is 1.6 lower
(see tests/calibration/test_population_reference.py). The conditional modes of all subjects are found
together by a batched Newton iteration (the exact ∂²L/∂η² near the modes where the
predictions are exact to rounding); the outer problem (log θ, log ω², log σ) by BFGS with
warm-started inner solves, on the analytic outer gradient of ``calibration.estimate.foce_gradient``
(implicit function theorem through η̂(θ); issue #11) or, for predictors without closed forms,
on central differences of the OFV. Several endpoints (warfarin's cp and
PCA) each keep their own error model: ``error`` is then a ``Residuals`` over the data grid.

The parts, one module each: the model and data records (``population_model``), the inner modes
(``foce_modes``), the outer objective (``foce_objective``), the analytic-gradient bookkeeping
(``foce``: ``Foce``), the outer minimisation (``foce_estimate``), its many starts, here or on Dask
(``population_starts``), and the covariance step (``foce_covariance``). This module fits:
``fit_population``; the public names stay importable here.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from calibration.estimate.foce import Foce
from calibration.estimate.foce_covariance import covariance_step, gradient_hessian
from calibration.estimate.foce_estimate import (
    GRADIENT_TOLERANCE,
    GRADIENTS,
    PopulationEstimate,
    estimate_foce,
    resolve_gradient,
)
from calibration.estimate.foce_modes import NEWTON_SWITCH, STEP_TOLERANCE, FoceState
from calibration.estimate.foce_objective import CLOSE, WARM_START_RADIUS
from calibration.estimate.population_model import (
    Individual,
    LognormalIndividual,
    PopulationData,
    PopulationModel,
    Predict,
    default_sigma,
    dvariance_df,
    lognormal_individual,
)
from calibration.estimate.population_starts import StartProblem, best_start, population_starts
from calibration.io.record import FitRecord


def fit_population(
    model: PopulationModel,
    data: PopulationData,
    theta0: dict[str, float],
    omega0: dict[str, float] | None = None,
    sigma0: np.ndarray | None = None,
    model_name: str = "custom",
    model_version: str = "",
    covariance: bool = True,
    gradient: str = "auto",
    n_starts: int = 1,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> FitRecord:
    """FOCE-I fit with a covariance step; returns the fit record.

    ``gradient``: "analytic" (outer gradient through the implicit function theorem, exact-Newton
    modes; the covariance step differences the gradient), "differences" (the former path:
    expected-information modes, central differences of the OFV, a Hessian of second differences
    of the OFV), or "auto" (the default): analytic where the predictions are exact to rounding
    (linear NonmemProblem models, or a model with ``predict_derivatives``), else differences.

    ``n_starts``: the outer minimisation from θ0 and ``n_starts − 1`` perturbations of it drawn from
    ``seed`` (``calibration.estimate.population_starts``), as Dask tasks where ``compute_on`` says;
    the lowest OFV wins, ties to the earliest start. ``progress(done, n_starts)`` after each start.
    """
    import time

    from calibration.uncertainty.information import natural_scale

    started = time.perf_counter()
    objective = Foce(model, data)
    gradient = resolve_gradient(objective, gradient)
    theta = np.array([theta0[name] for name in model.theta_names], dtype=float)
    omega = np.array([(omega0 or {}).get(name, 0.1) for name in model.eta_names], dtype=float)
    sigma = default_sigma(model.error, data) if sigma0 is None else np.asarray(sigma0, float)
    starts = population_starts(objective.pack(theta, omega, sigma), len(theta), n_starts, seed)
    estimate, objective = best_start(StartProblem(model, data, gradient), starts, progress)
    names = [*model.theta_names, *(f"omega2_{n}" for n in model.eta_names), *model.error.parameter_names]
    uncertainty = covariance_step(objective, estimate.x, names, gradient) if covariance else None
    objective.ofv(estimate.x)  # modes back at the optimum after the Hessian's excursions
    sd = uncertainty.log_sd if uncertainty and uncertainty.covariance is not None else np.full(len(names), np.nan)
    x = estimate.x
    n_theta = len(model.theta_names)
    theta_hat, omega_hat, sigma_hat = objective.unpack(x)
    phi = model.individual(theta_hat, objective.eta)
    warnings = [] if estimate.converged else [f"the optimiser did not converge: {estimate.message}"]
    warnings += uncertainty.warnings if uncertainty else []
    correlation = uncertainty.correlation() if uncertainty else None
    return FitRecord(
        model=model_name,
        model_version=model_version,
        method="population-foce-i",
        converged=estimate.converged,
        minus2ll=estimate.ofv,
        n_observations=data.n_observations,
        n_subjects=len(data.ids),
        n_estimated=len(x),
        theta={name: natural_scale(x[i], sd[i]) for i, name in enumerate(model.theta_names)},
        omega={
            name: {
                "variance": float(np.diag(omega_hat)[k]),
                "cv_percent": float(100 * np.sqrt(np.exp(np.diag(omega_hat)[k]) - 1)),
                "se_variance": (
                    float(np.diag(omega_hat)[k] * sd[n_theta + k]) if np.isfinite(sd[n_theta + k]) else None
                ),
            }
            for k, name in enumerate(model.eta_names)
        },
        sigma=dict(zip(model.error.parameter_names, map(float, sigma_hat))),
        individual={
            str(i): {name: float(phi[s, k]) for k, name in enumerate(model.individual_names)}
            for s, i in enumerate(data.ids)
        },
        correlation={"names": names, "matrix": None if correlation is None else correlation.tolist()},
        warnings=warnings,
        wall_time_s=time.perf_counter() - started,
    )


__all__ = [
    "CLOSE",
    "GRADIENTS",
    "GRADIENT_TOLERANCE",
    "NEWTON_SWITCH",
    "STEP_TOLERANCE",
    "WARM_START_RADIUS",
    "Foce",
    "FoceState",
    "Individual",
    "LognormalIndividual",
    "PopulationData",
    "PopulationEstimate",
    "PopulationModel",
    "Predict",
    "default_sigma",
    "dvariance_df",
    "estimate_foce",
    "fit_population",
    "gradient_hessian",
    "lognormal_individual",
    "resolve_gradient",
]
