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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import numpy as np
from scipy.optimize import minimize

from calibration.errors import FitFailedError, NoObservationsError
from calibration.estimate.error_models import ErrorModel, Residuals, minus2ll_terms
from calibration.estimate.foce_gradient import (
    chain,
    expected_hessian,
    foce_gradient,
    individual_derivatives,
    loss_derivatives,
    predictor_derivatives,
)
from calibration.io.record import FitRecord

Predict = Callable[[np.ndarray], np.ndarray]  # φ (n_subjects, n_phi) → f (n_subjects, n_obs_max)
Individual = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (θ, η (n_subjects, n_eta)) → φ
_JACOBIAN_STEP = 1e-5
GRADIENT_TOLERANCE = 0.05


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


NEWTON_SWITCH = 3e-2  # η steps below this: exact Newton (quadratic); above: expected-information steps
STEP_TOLERANCE = 1e-4  # η: after an exact Newton step this short the mode is off by ~1e-8 (quadratic convergence)
CLOSE = 1e-2  # log units: within this of the last point its modes are the start, unchecked
WARM_START_RADIUS = 0.25  # log units (~28 % in any θ): beyond it the modes restart from η = 0


@dataclass
class FoceState:
    """The inner solution at one outer point: modes, predictions and their η-gradients."""

    eta: np.ndarray
    f: np.ndarray
    g: np.ndarray
    ofv_by_subject: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # (ψ, f, ∂f/∂ψ, ∂²f/∂ψ²) at these modes when the inner solve computed them (reused by the gradient)
    psi_derivatives: tuple[np.ndarray, ...] | None = None


class Foce:
    """The FOCE-I objective for one model and dataset; keeps the last modes for warm starts."""

    def __init__(self, model: PopulationModel, data: PopulationData, newton: str = "auto") -> None:
        """``newton``: the inner steps' Hessian — "exact" (∂²L/∂η², from second derivatives of the
        predictions; the expected information where it is not positive definite), "expected"
        (the expected information throughout, the former path: linear convergence), or "auto":
        exact where the predictions are smooth to rounding (``self.smooth``), else expected."""
        self.model, self.data = model, data
        self._derivatives = model.predict_derivatives or _closed_forms(model.predict)
        # second differences need predictions exact to rounding: closed forms (a linear NonmemProblem,
        # or the model's own derivatives); an integrator's tolerance would swamp them
        self.smooth = self._derivatives is not None
        self.newton = ("exact" if self.smooth else "expected") if newton == "auto" else newton
        self.n_theta, self.n_eta = len(model.theta_names), len(model.eta_names)
        self.n_sigma = len(model.error.parameter_names)
        self.eta = np.zeros((len(data.ids), self.n_eta))
        self._eta_x: np.ndarray | None = None  # the outer point the modes in self.eta belong to
        self._psi_cache: tuple[np.ndarray, ...] | None = None  # at those modes, if known
        self._total = np.inf  # the OFV there
        self.evaluations = 0
        self.gradients = 0

    # --- parameter vector: [log θ, log ω² (diagonal Ω), log σ] ---------------------------
    def unpack(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        theta = np.exp(x[: self.n_theta])
        omega = np.diag(np.exp(x[self.n_theta : self.n_theta + self.n_eta]))
        sigma = np.exp(x[self.n_theta + self.n_eta :])
        return theta, omega, sigma

    def pack(self, theta: np.ndarray, omega_variances: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        return np.log(np.concatenate([theta, omega_variances, sigma]))

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

    def ofv(self, x: np.ndarray) -> float:
        """OFV without the constant; non-finite values become +inf so optimisers back off."""
        x = np.asarray(x, dtype=float)
        if self._eta_x is not None and np.array_equal(x, self._eta_x):
            return self._total  # the modes in self.eta are this point's
        theta, omega, sigma = self.unpack(x)
        self.evaluations += 1
        shift = np.full(x.size, np.inf) if self._eta_x is None else np.abs(x - self._eta_x)
        with np.errstate(all="ignore"):
            if np.max(shift) <= CLOSE:  # difference steps, a converging line search: the last modes, as they are
                start = self.eta
            elif np.max(shift[: self.n_theta]) <= WARM_START_RADIUS:
                start = self._start(theta, omega, sigma)
            else:
                start = np.zeros_like(self.eta)
            state = self.conditional_modes(theta, omega, sigma, start)
            total = float(self.subject_ofv(state, omega, sigma).sum())
        if not np.isfinite(total):
            return np.inf
        self.eta, self._eta_x, self._total = state.eta, x.copy(), total
        self._psi_cache = state.psi_derivatives
        return total

    def forget(self) -> None:
        """Drop the kept modes: the next OFV solves its modes from η = 0."""
        self.eta = np.zeros_like(self.eta)
        self._eta_x, self._psi_cache, self._total = None, None, np.inf

    def _start(self, theta: np.ndarray, omega: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """Per subject, the better start of the last modes and η = 0 (by the inner objective).

        Warm starts save inner iterations and keep difference quotients smooth, but modes from a
        distant point can lie in another basin (oral models: the ka/ke flip-flop), where the
        Newton solve would stay: the OFV at a point would depend on the path to it (ACOP oral:
        50,852 instead of 43,722 at the start after one long trial step), which stalls
        optimisers. So modes are reused only within WARM_START_RADIUS of where they were found,
        and even then only for subjects they still suit better than η = 0.
        """
        omega_inv = np.linalg.inv(omega)
        warm = self._inner_objective(theta, omega_inv, sigma, self.eta)
        cold = self._inner_objective(theta, omega_inv, sigma, np.zeros_like(self.eta))
        return np.where((warm <= cold)[:, None], self.eta, 0.0)  # NaN (warm unusable) → η = 0

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

    def gradient(self, x: np.ndarray) -> np.ndarray:
        """The analytic dOFV/dx (``calibration.estimate.foce_gradient``) at the modes of ``x`` (solved if not yet)."""
        return self.gradient_by_subject(x).sum(axis=0)

    def gradient_by_subject(self, x: np.ndarray) -> np.ndarray:
        """Each subject's share of the analytic gradient, (n_subjects, n_x)."""
        x = np.asarray(x, dtype=float)
        if self._eta_x is None or not np.array_equal(x, self._eta_x):
            if not np.isfinite(self.ofv(x)):
                return np.zeros((len(self.data.ids), x.size))  # rejected by its value; never used
        theta, omega, sigma = self.unpack(x)
        with np.errstate(all="ignore"):
            f, fu, fuu = self._outer_derivatives(theta)
            by_subject = foce_gradient(
                self.data.dv,
                self.data.mask,
                self.eta,
                np.diag(omega),
                sigma,
                f,
                fu,
                fuu,
                self.model.error.variance,
                partial(dvariance_df, self.model.error),
            )
        self.gradients += 1
        return by_subject

    def _outer_derivatives(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """f, ∂f/∂u and ∂²f/∂u² at the current modes, u = (η, log θ)."""
        psi, d1, d2 = individual_derivatives(self.model.individual, theta, self.eta)
        known = self._psi_cache
        if known is not None and np.allclose(known[0], psi, rtol=0.0, atol=1e-12):  # the inner solve's last
            f, jac, hess = known[1:]
        else:
            f, jac, hess = self._psi_derivatives(psi)
        fu, fuu = chain(jac, hess, d1, d2)
        return f, fu, fuu

    def expected_hessian(self, x: np.ndarray) -> np.ndarray:
        """Fisher scoring's approximation of the OFV's Hessian at ``x`` (``foce_gradient.expected_hessian``)."""
        x = np.asarray(x, dtype=float)
        if self._eta_x is None or not np.array_equal(x, self._eta_x):
            self.ofv(x)
        theta, omega, sigma = self.unpack(x)
        with np.errstate(all="ignore"):
            f, fu, _ = self._outer_derivatives(theta)
            return expected_hessian(
                self.data.mask,
                np.diag(omega),
                sigma,
                f,
                fu,
                self.model.error.variance,
                partial(dvariance_df, self.model.error),
            )

    def subject_ofv(self, state: FoceState, omega: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        variance = self.model.error.variance(state.f, sigma)
        data_term = np.where(self.data.mask, minus2ll_terms(self.data.dv, state.f, variance), 0.0).sum(axis=1)
        omega_inv = np.linalg.inv(omega)
        prior = np.einsum("ni,ij,nj->n", state.eta, omega_inv, state.eta)
        mask = self.data.mask[..., None]
        gw = mask * state.g / np.sqrt(variance)[..., None]
        hw = mask * (dvariance_df(self.model.error, state.f, sigma) / variance)[..., None] * state.g  # h / V
        information = omega_inv + np.einsum("nmi,nmj->nij", gw, gw) + 0.5 * np.einsum("nmi,nmj->nij", hw, hw)
        _, logdet_information = np.linalg.slogdet(information)
        _, logdet_omega = np.linalg.slogdet(omega)
        return data_term + prior + logdet_omega + logdet_information


@dataclass
class PopulationEstimate:
    x: np.ndarray
    ofv: float
    converged: bool
    message: str
    eta: np.ndarray
    evaluations: int


GRADIENTS = ("auto", "analytic", "differences")


def estimate_foce(
    objective: Foce, x0: np.ndarray, max_iterations: int = 200, gradient: str = "auto"
) -> PopulationEstimate:
    """Minimise the OFV from ``x0`` by BFGS, restarted once if needed.

    ``gradient="analytic"`` (the default): the exact outer gradient of ``Foce.gradient``
    (implicit function theorem through the modes; ``calibration.estimate.foce_gradient``), one
    inner solve and one set of prediction sensitivities per point; BFGS's first steps scaled by
    Fisher scoring's Hessian (``_scaled_start``). Fisher scoring itself (a trust region on
    ``Foce.expected_hessian``) was tried: 10 iterations on theophylline, but linear near the
    optimum where the expected information departs from the observed (ACOP oral: still 0.02
    from the optimum after 200). ``"differences"``: the former path, central differences of the
    OFV (2·n inner solves per gradient). Central, not forward: the OFV moves with the inner
    modes, and forward differences stall BFGS short of the optimum (seen on phenobarbital: 1e-3
    in OFV, 1 % in θ).
    """
    gradient = resolve_gradient(objective, gradient)
    if not np.isfinite(objective.ofv(x0)):
        raise FitFailedError(
            "the objective is not finite at the initial estimates; give initial values closer to the data"
        )
    options = {"maxiter": max_iterations, "gtol": 1e-3}
    # A trial step may leave the OFV's finite domain (+inf); the difference quotients then
    # hold inf − inf, which BFGS treats as a failed step — not worth a warning.
    with np.errstate(invalid="ignore", over="ignore"):
        if gradient == "analytic":
            x1 = _scoring_step(objective, x0)
            bfgs = {**options, **_scaled_start(objective, x1)}
            result = minimize(objective.ofv, x1, method="BFGS", jac=objective.gradient, options=bfgs)
            if not result.success:
                bfgs = {**options, **_scaled_start(objective, result.x)}
                result = minimize(objective.ofv, result.x, method="BFGS", jac=objective.gradient, options=bfgs)
        else:
            result = minimize(objective.ofv, x0, method="BFGS", jac="3-point", options=options)
            if not result.success:
                result = minimize(objective.ofv, result.x, method="BFGS", jac="3-point", options=options)
    value = objective.ofv(result.x)  # leaves the modes at the optimum
    # BFGS reports "precision loss" when the OFV's numerical noise stops the line search;
    # at a gradient this small (0.05 OFV units per unit of log-parameter) that is the optimum.
    converged = bool(result.success) or float(np.max(np.abs(result.jac))) < GRADIENT_TOLERANCE
    return PopulationEstimate(
        result.x, value, converged, str(result.message), objective.eta.copy(), objective.evaluations
    )


def _scoring_step(objective: Foce, x: np.ndarray, radius: float = 1.0) -> np.ndarray:
    """One Fisher scoring step (``Foce.expected_hessian``), at most ``radius`` long (log units),
    halved until the OFV decreases; ``x`` itself if it does not. From the start the expected
    information is a good Hessian (theophylline: BFGS then needs 9 OFV evaluations, not 14);
    near the optimum it is not (linear convergence), which BFGS is left to."""
    hessian, gradient = objective.expected_hessian(x), objective.gradient(x)
    if not (np.all(np.isfinite(hessian)) and np.all(np.isfinite(gradient))):
        return x
    values, vectors = np.linalg.eigh(0.5 * (hessian + hessian.T))
    if values.max() <= 0:
        return x
    values = np.maximum(values, 1e-6 * values.max())
    step = -(vectors / values) @ vectors.T @ gradient
    step *= min(1.0, radius / float(np.linalg.norm(step)))
    value = objective.ofv(x)
    for _ in range(4):
        if objective.ofv(x + step) < value:
            return x + step
        step /= 2
    objective.ofv(x)  # the modes back at x
    return x


def _scaled_start(objective: Foce, x: np.ndarray) -> dict:
    """BFGS's first steps scaled by Fisher scoring's Hessian (else ½ Σ gᵢgᵢᵀ of the subjects'
    gradients, as BHHH), not by the identity: no first trial step hundreds of log units long."""
    approx = objective.expected_hessian(x)
    if not np.all(np.isfinite(approx)):
        shares = objective.gradient_by_subject(x)
        approx = 0.5 * shares.T @ shares
    if np.all(np.isfinite(approx)):
        values, vectors = np.linalg.eigh(0.5 * (approx + approx.T))
        if values.max() > 0:
            values = np.maximum(values, 1e-3 * values.max())
            inverse = (vectors / values) @ vectors.T
            return {"hess_inv0": 0.5 * (inverse + inverse.T)}  # exactly symmetric, as scipy checks
    return {}


def resolve_gradient(objective: Foce, gradient: str) -> str:
    """ "auto": analytic where the predictions are smooth to rounding (``Foce.smooth``), else differences."""
    if gradient not in GRADIENTS:
        raise ValueError(f"gradient must be one of {GRADIENTS}, not {gradient!r}")
    return ("analytic" if objective.smooth else "differences") if gradient == "auto" else gradient


def gradient_hessian(objective: Foce, x: np.ndarray, step: float = 1e-4, central: bool = False) -> np.ndarray:
    """The OFV's Hessian by differences of the analytic gradient, symmetrised: forward (n + 1
    gradients; truncation O(step) ~ 1e-4 relative, far below what a standard error needs) or
    central (2·n gradients)."""
    base = None if central else objective.gradient(x)
    columns = []
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = step
        if central:
            columns.append((objective.gradient(x + e) - objective.gradient(x - e)) / (2 * step))
        else:
            columns.append((objective.gradient(x + e) - base) / step)
    hessian = np.stack(columns, axis=1)
    return 0.5 * (hessian + hessian.T)


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
) -> FitRecord:
    """FOCE-I fit with a covariance step; returns the fit record.

    ``gradient``: "analytic" (outer gradient through the implicit function theorem, exact-Newton
    modes; the covariance step differences the gradient), "differences" (the former path:
    expected-information modes, central differences of the OFV, a Hessian of second differences
    of the OFV), or "auto" (the default): analytic where the predictions are exact to rounding
    (linear NonmemProblem models, or a model with ``predict_derivatives``), else differences.
    """
    import time

    from calibration.uncertainty.information import from_hessian, natural_scale, numerical_hessian

    started = time.perf_counter()
    objective = Foce(model, data)
    gradient = resolve_gradient(objective, gradient)
    objective.newton = "exact" if gradient == "analytic" else "expected"
    theta = np.array([theta0[name] for name in model.theta_names], dtype=float)
    omega = np.array([(omega0 or {}).get(name, 0.1) for name in model.eta_names], dtype=float)
    sigma = default_sigma(model.error, data) if sigma0 is None else np.asarray(sigma0, float)
    estimate = estimate_foce(objective, objective.pack(theta, omega, sigma), gradient=gradient)
    names = [*model.theta_names, *(f"omega2_{n}" for n in model.eta_names), *model.error.parameter_names]
    if covariance:
        hessian = (
            gradient_hessian(objective, estimate.x)
            if gradient == "analytic"
            else numerical_hessian(objective.ofv, estimate.x)
        )
    uncertainty = from_hessian(hessian, names) if covariance else None
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


def _closed_forms(predict: Callable) -> Callable | None:
    """The closed-form prediction derivatives a problem offers for its own ``predict`` (None if it offers none)."""
    offer = getattr(getattr(predict, "__self__", None), "closed_form_derivatives", None)
    return offer() if callable(offer) else None
