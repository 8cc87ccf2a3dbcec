"""The inner problem of FOCE-I: the conditional modes η̂_i of all subjects, found together.

By a batched Newton iteration with per-subject backtracking: on the expected information
(linear convergence, robust far out), or on the exact ∂²L/∂η² from second derivatives of the
predictions (``calibration.estimate.foce_gradient``; quadratic convergence) where the predictions
are exact to rounding. The outer objective over these modes is ``calibration.estimate.foce_objective``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import numpy as np

from calibration.estimate.error_models import minus2ll_terms
from calibration.estimate.foce_gradient import chain, individual_derivatives, loss_derivatives, predictor_derivatives
from calibration.estimate.population_model import (
    PopulationData,
    PopulationModel,
    closed_forms,
    dvariance_df,
)

_JACOBIAN_STEP = 1e-5
NEWTON_SWITCH = 3e-2  # η steps below this: exact Newton (quadratic); above: expected-information steps
STEP_TOLERANCE = 1e-4  # η: after an exact Newton step this short the mode is off by ~1e-8 (quadratic convergence)


@dataclass
class FoceState:
    """The inner solution at one outer point: modes, predictions and their η-gradients."""

    eta: np.ndarray
    f: np.ndarray
    g: np.ndarray
    ofv_by_subject: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # (ψ, f, ∂f/∂ψ, ∂²f/∂ψ²) at these modes when the inner solve computed them (reused by the gradient)
    psi_derivatives: tuple[np.ndarray, ...] | None = None


class ConditionalModes:
    """The inner problem of FOCE-I for one model and dataset: each subject's mode η̂_i at given (θ, Ω, σ)."""

    def __init__(self, model: PopulationModel, data: PopulationData, newton: str = "auto") -> None:
        """``newton``: the inner steps' Hessian — "exact" (∂²L/∂η², from second derivatives of the
        predictions; the expected information where it is not positive definite), "expected"
        (the expected information throughout, the former path: linear convergence), or "auto":
        exact where the predictions are smooth to rounding (``self.smooth``), else expected."""
        self.model, self.data = model, data
        self._derivatives = model.predict_derivatives or closed_forms(model.predict)
        # second differences need predictions exact to rounding: closed forms (a linear NonmemProblem,
        # or the model's own derivatives); an integrator's tolerance would swamp them
        self.smooth = self._derivatives is not None
        self.newton = ("exact" if self.smooth else "expected") if newton == "auto" else newton
        self.n_theta, self.n_eta = len(model.theta_names), len(model.eta_names)
        self.n_sigma = len(model.error.parameter_names)

    # --- predictions and their η-Jacobian -------------------------------------------------
    def _predict(self, theta: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """Predictions; a subject whose parameters are not finite gets NaN (its step is rejected)."""
        phi = self.model.individual(theta, eta)
        bad = ~np.all(np.isfinite(phi) & (phi > 0), axis=1)
        if bad.any():
            phi = np.where(bad[:, None], self.model.individual(theta, np.zeros_like(eta)), phi)
        f = np.asarray(self.model.predict(phi), dtype=float)
        f[bad] = np.nan
        return np.where(self.data.mask, f, 0.0)

    def _jacobian(self, theta: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """∂f/∂η by central differences (all subjects at once): (n, m, q)."""
        columns = []
        for k in range(self.n_eta):
            step = np.zeros(self.n_eta)
            step[k] = _JACOBIAN_STEP
            columns.append((self._predict(theta, eta + step) - self._predict(theta, eta - step)) / (2 * _JACOBIAN_STEP))
        return np.stack(columns, axis=-1)

    def _inner_objective(self, theta, omega_inv, sigma, eta) -> np.ndarray:
        f = self._predict(theta, eta)
        variance = self.model.error.variance(f, sigma)
        data_term = np.where(self.data.mask, minus2ll_terms(self.data.dv, f, variance), 0.0).sum(axis=1)
        return data_term + np.einsum("ni,ij,nj->n", eta, omega_inv, eta)

    def conditional_modes(self, theta, omega, sigma, eta0, max_iterations: int = 50) -> FoceState:
        """Batched Newton (expected-information Hessian) with per-subject backtracking."""
        if self.newton == "exact":
            return self._exact_modes(theta, omega, sigma, eta0, max_iterations)
        omega_inv = np.linalg.inv(omega)
        eta = eta0.copy()
        objective = self._inner_objective(theta, omega_inv, sigma, eta)
        mask, y, error = self.data.mask[..., None], self.data.dv, self.model.error
        for _ in range(max_iterations):
            f, g = self._predict(theta, eta), self._jacobian(theta, eta)
            variance = error.variance(f, sigma)
            dv = (dvariance_df(error, f, sigma) / variance)[..., None] * g  # ∂V/∂η / V
            r = (y - f)[..., None]
            grad = (mask * (-2 * r / variance[..., None] * g + (1 - r**2 / variance[..., None]) * dv)).sum(1)
            grad += 2 * eta @ omega_inv
            gw = mask * g / np.sqrt(variance)[..., None]
            dvw = mask * dv
            hessian = 2 * np.einsum("nmi,nmj->nij", gw, gw) + np.einsum("nmi,nmj->nij", dvw, dvw) + 2 * omega_inv
            step = np.linalg.solve(hessian, grad[..., None])[..., 0]
            step[~np.all(np.isfinite(step), axis=1)] = 0.0  # a subject without a usable step stays put
            eta, objective, moved = self._backtrack(theta, omega_inv, sigma, eta, step, objective)
            if np.max(np.abs(moved)) < 1e-8:
                break
        f, g = self._predict(theta, eta), self._jacobian(theta, eta)
        return FoceState(eta, f, g)

    def _exact_modes(self, theta, omega, sigma, eta0, max_iterations: int) -> FoceState:
        """Newton on ∂²L/∂η² (quadratic convergence; ``calibration.estimate.foce_gradient`` derivatives).

        Warm-started subjects (η₀ ≠ 0: modes of a nearby outer point) take exact steps at once,
        cold ones (η₀ = 0) the expected information's robust steps until their steps are short.
        It stops before a step when every Newton step is below STEP_TOLERANCE, keeping that
        iteration's predictions and η-gradients (no extra evaluation at the end).
        """
        omega_inv = np.linalg.inv(omega)
        eta = eta0.copy()
        objective = self._inner_objective(theta, omega_inv, sigma, eta)
        y, mask, error = self.data.dv, self.data.mask, self.model.error
        dvar = partial(dvariance_df, error)
        near = np.any(eta0 != 0, axis=1)  # per subject: exact Newton steps allowed
        moved = np.full(eta.shape[0], np.inf)  # per subject, the last step's size
        for _ in range(max_iterations):
            psi_derivatives = None
            if self._derivatives is not None or near.all():  # closed forms: second derivatives are cheap
                f, g, gee, psi_derivatives = self._eta_derivatives(theta, eta)
            else:  # far out: the expected information's cheaper, robust steps
                f, g = self._predict(theta, eta), self._jacobian(theta, eta)
                gee = np.zeros((*g.shape, self.n_eta))
            a, b, w, _ = loss_derivatives(y, mask, f, sigma, error.variance, dvar)
            grad = np.einsum("nm,nmi->ni", a, g) + 2 * eta @ omega_inv
            exact = np.einsum("nm,nmi,nmj->nij", b, g, g) + np.einsum("nm,nmij->nij", a, gee) + 2 * omega_inv
            expected = 2 * np.einsum("nm,nmi,nmj->nij", w, g, g) + 2 * omega_inv
            definite = np.all(np.linalg.eigvalsh(np.where(np.isfinite(exact), exact, 0.0)) > 0, axis=1)
            hessian = np.where((definite & near)[:, None, None], exact, expected)
            hessian = np.where(np.isfinite(hessian), hessian, np.eye(self.n_eta))
            try:
                step = np.linalg.solve(hessian, grad[..., None])[..., 0]
            except np.linalg.LinAlgError:  # a singular subject (far from the data): least-squares steps
                step = np.einsum("nij,nj->ni", np.linalg.pinv(hessian), np.where(np.isfinite(grad), grad, 0.0))
            step[~np.all(np.isfinite(step), axis=1)] = 0.0
            exact_step = definite & near  # quadratic convergence: a short step leaves ~its square
            short = np.max(np.abs(step), axis=1) < np.where(exact_step, STEP_TOLERANCE, 1e-7)
            if np.all(short | (moved < 1e-8)):  # converged (or stuck)
                return self._last_step(eta, np.where(short[:, None], -step, 0.0), f, g, gee, psi_derivatives)
            eta, objective, change = self._backtrack(theta, omega_inv, sigma, eta, step, objective)
            moved = np.max(np.abs(change), axis=1)
            near |= moved <= NEWTON_SWITCH
        f, g = self._predict(theta, eta), self._jacobian(theta, eta)
        return FoceState(eta, f, g)

    def _eta_derivatives(self, theta, eta) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
        """f, ∂f/∂η, ∂²f/∂η², and (ψ, f, ∂f/∂ψ, ∂²f/∂ψ², ∂ψ/∂η) for the outer gradient at the same point."""
        psi, d1, d2 = individual_derivatives(self.model.individual, theta, eta, eta_only=True)
        f, jac, hess = self._psi_derivatives(psi)
        g, gee = chain(jac, hess, d1, d2)
        return f, g, gee, (psi, f, jac, hess, d1)

    @staticmethod
    def _last_step(eta, d, f, g, gee, psi_derivatives) -> FoceState:
        """The state after a last, short Newton step d (< STEP_TOLERANCE): f and g carried along
        by their Taylor expansion (error O(|d|²) ~ 1e-12), no new evaluation; the mode then
        holds the OFV to ~1e-10 rather than ~1e-6, so difference quotients of it stay smooth."""
        f = f + np.einsum("nmi,ni->nm", g, d)
        g = g + np.einsum("nmij,nj->nmi", gee, d)
        if psi_derivatives is not None:
            psi, _, jac, hess, d1 = psi_derivatives
            dpsi = d @ d1.T if d1.ndim == 2 else np.einsum("nrk,nk->nr", d1, d)
            psi_derivatives = (psi + dpsi, f, jac + np.einsum("nmrs,ns->nmr", hess, dpsi), hess)
        return FoceState(eta + d, f, g, psi_derivatives=psi_derivatives)

    def _backtrack(self, theta, omega_inv, sigma, eta, step, objective):
        scale = np.ones(eta.shape[0])
        accepted = np.zeros(eta.shape[0], dtype=bool)
        new_eta, new_objective = eta.copy(), objective.copy()
        for _ in range(30):
            candidate = eta - scale[:, None] * step
            value = self._inner_objective(theta, omega_inv, sigma, candidate)
            better = ~accepted & np.isfinite(value) & (value <= objective + 1e-12)
            new_eta[better], new_objective[better] = candidate[better], value[better]
            accepted |= better
            if accepted.all():
                break
            scale[~accepted] /= 2
        return new_eta, new_objective, new_eta - eta

    def _predict_psi(self, psi: np.ndarray) -> np.ndarray:
        """Predictions for individual parameters φ = exp(ψ); NaN for subjects whose φ is unusable."""
        phi = np.exp(psi)
        bad = ~np.all(np.isfinite(phi) & (phi > 0), axis=1)
        f = np.asarray(self.model.predict(np.where(bad[:, None], 1.0, phi)), dtype=float)
        f[bad] = np.nan
        return np.where(self.data.mask, f, 0.0)

    def _psi_derivatives(self, psi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """f, ∂f/∂ψ, ∂²f/∂ψ² at ψ = log φ: closed forms where the model has them, else differences."""
        phi = np.exp(psi)
        usable = np.all(np.isfinite(phi) & (phi > 0))
        exact = self._derivatives(phi) if self._derivatives is not None and usable else None
        if exact is None:
            return predictor_derivatives(self._predict_psi, psi)
        mask = self.data.mask
        f, jac, hess = exact
        return np.where(mask, f, 0.0), np.where(mask[..., None], jac, 0.0), np.where(mask[..., None, None], hess, 0.0)
