"""The outer FOCE-I objective: the OFV at (log θ, log ω², log σ), over warm-started conditional modes.

    OFV = Σ_i [ Σ_j (log V_ij + (y_ij − f_ij)²/V_ij) + η̂_iᵀ Ω⁻¹ η̂_i
                + log|Ω| + log|Ω⁻¹ + Σ_j (g_ij g_ijᵀ / V_ij + ½ h_ij h_ijᵀ / V_ij²)| ]

(``calibration.estimate.population`` explains the form.) The modes of the last point are kept
and reused as starts nearby (``CLOSE``, ``WARM_START_RADIUS``); farther away they restart from η = 0.
"""

from __future__ import annotations

import numpy as np

from calibration.estimate.error_models import minus2ll_terms
from calibration.estimate.foce_modes import ConditionalModes, FoceState
from calibration.estimate.population_model import PopulationData, PopulationModel, dvariance_df

CLOSE = 1e-2  # log units: within this of the last point its modes are the start, unchecked
WARM_START_RADIUS = 0.25  # log units (~28 % in any θ): beyond it the modes restart from η = 0


class FoceObjective(ConditionalModes):
    """The OFV for one model and dataset; keeps the last modes for warm starts."""

    def __init__(self, model: PopulationModel, data: PopulationData, newton: str = "auto") -> None:
        super().__init__(model, data, newton)
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
