"""Population fits by SAEM (stochastic approximation EM; Kuhn & Lavielle 2005, as in Monolix/nlmixr2).

Individual parameters are log-normal: ψ_i = log φ_i = μ + η_i, η_i ~ N(0, Ω) (Ω diagonal)
for the parameters with a random effect; the others are fixed effects. Each iteration k:

- E-step (simulation): a few Metropolis–Hastings moves of every subject's ψ_i targeting
  p(ψ_i | y_i) — kernel 1 proposes from the prior N(μ, Ω), kernel 2 a random walk on all
  components, kernel 3 one component at a time; the random-walk scales adapt towards an
  acceptance rate of 0.4;
- SA-step: s₁ += γ_k (mean ψ − s₁), s₂ += γ_k (mean ψ² − s₂), with γ_k = 1 for the
  ``n_explore`` first iterations and 1/(k − n_explore + 1) afterwards;
- M-step: μ = s₁, ω² = s₂ − s₁² (while exploring, ω² shrinks at most 5 % per iteration, so the
  chains do not collapse early); the residual SDs move by γ_k towards the minimiser of the
  data −2LL at the current ψ, and fixed effects without a random effect by a γ_k-damped
  Gauss–Newton step on the same objective.

SAEM maximises the exact likelihood, but does not give it: the −2LL in the record is the
FOCE-I objective (calibration.estimate.population) at the SAEM estimates — what nlmixr2 reports for
its SAEM fits too. Standard errors are not computed here.
"""

from __future__ import annotations

import time
from typing import Mapping

import numpy as np
from scipy.optimize import minimize

from calibration.errors import FitFailedError
from calibration.estimate.error_models import minus2ll_terms
from calibration.estimate.population import Foce, PopulationData, PopulationModel, default_sigma
from calibration.io.record import Estimate, FitRecord

TARGET_ACCEPTANCE = 0.4


class _Chains:
    """The model's −2LL pieces at the chain state ψ (subjects × random-effect parameters)."""

    def __init__(self, model: PopulationModel, data: PopulationData, seed: int) -> None:
        self.model, self.data, self.rng = model, data, np.random.default_rng(seed)
        self.columns = [model.theta_names.index(n) for n in model.eta_names]
        self.fixed = [k for k in range(len(model.theta_names)) if k not in self.columns]

    def predict(self, log_theta: np.ndarray, psi: np.ndarray) -> np.ndarray:
        phi = np.repeat(np.exp(log_theta)[None, :], psi.shape[0], axis=0)
        phi[:, self.columns] = np.exp(psi)
        with np.errstate(all="ignore"):
            f = np.asarray(self.model.predict(phi), dtype=float)
        return np.where(self.data.mask, f, 0.0)

    def data_term(self, f: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """−2LL of each subject's data (no constant); +inf where the prediction is not finite."""
        with np.errstate(all="ignore"):
            terms = minus2ll_terms(self.data.dv, f, self.model.error.variance(f, sigma))
            total = np.where(self.data.mask, terms, 0.0).sum(axis=1)
        return np.where(np.isfinite(total), total, np.inf)


def _metropolis(chains, log_theta, sigma, psi, term, proposal, mu, omega2):
    """One MH move of every subject to ``proposal``; returns the new state and acceptances."""
    f = chains.predict(log_theta, proposal)
    new_term = chains.data_term(f, sigma)
    prior_new, prior_old = (((p - mu) ** 2 / omega2).sum(axis=1) for p in (proposal, psi))
    with np.errstate(invalid="ignore"):
        log_ratio = -0.5 * (new_term + prior_new - term - prior_old)
    accept = np.log(chains.rng.random(psi.shape[0])) < log_ratio
    return np.where(accept[:, None], proposal, psi), np.where(accept, new_term, term), accept


def _sigma_step(chains, f, sigma):
    """The residual SDs that minimise the data −2LL at predictions ``f`` (log scale)."""
    result = minimize(
        lambda s: float(chains.data_term(f, np.exp(s)).sum()),
        np.log(sigma),
        method="Nelder-Mead",
        options={"xatol": 1e-4, "fatol": 1e-4, "maxiter": 400},
    )
    return result.x if np.isfinite(result.fun) else np.log(sigma)


def _fixed_step(chains, log_theta, sigma, psi, f):
    """Gauss–Newton step of the data −2LL in the log fixed effects without a random effect."""
    if not chains.fixed:
        return np.zeros(0)
    mask, variance = chains.data.mask, chains.model.error.variance(f, sigma)
    residual = np.where(mask, chains.data.dv - f, 0.0) / np.sqrt(variance)
    jacobian = []
    for k in chains.fixed:
        shifted = log_theta.copy()
        shifted[k] += 1e-4
        jacobian.append((np.where(mask, chains.predict(shifted, psi) - f, 0.0) / np.sqrt(variance) / 1e-4).ravel())
    j = np.stack(jacobian, axis=1)
    step = np.linalg.lstsq(j, residual.ravel(), rcond=None)[0]
    return np.clip(step, -0.5, 0.5)


def fit_saem(
    model: PopulationModel,
    data: PopulationData,
    theta0: Mapping[str, float],
    omega0: Mapping[str, float] | None = None,
    sigma0: np.ndarray | None = None,
    *,
    n_explore: int = 150,
    n_smooth: int = 150,
    seed: int = 0,
    moves: tuple[int, int, int] = (2, 2, 1),
    bounds: Mapping[str, tuple[float, float]] | None = None,
    model_name: str = "custom",
    model_version: str = "",
) -> FitRecord:
    started = time.perf_counter()
    chains = _Chains(model, data, seed)
    rng, q = chains.rng, len(model.eta_names)
    log_theta = np.log([theta0[n] for n in model.theta_names]).astype(float)
    omega2 = np.array([(omega0 or {}).get(n, 0.5) for n in model.eta_names], dtype=float)
    sigma = default_sigma(model.error, data) if sigma0 is None else np.asarray(sigma0, dtype=float)
    log_bounds = {k: np.log(bounds[n]) for k, n in enumerate(model.theta_names) if bounds and n in bounds}
    mu = log_theta[chains.columns]
    psi = np.repeat(mu[None, :], len(data.ids), axis=0)
    term = chains.data_term(chains.predict(log_theta, psi), sigma)
    if not np.all(np.isfinite(term)):
        raise FitFailedError("the model cannot be evaluated at the initial estimates; give values closer to the data")
    scale = 0.5 * np.sqrt(omega2)
    s1, s2 = mu.copy(), (psi**2).mean(axis=0)
    for k in range(n_explore + n_smooth):
        gamma = 1.0 if k < n_explore else 1.0 / (k - n_explore + 1)
        for _ in range(moves[0]):  # kernel 1: from the prior
            draw = mu + np.sqrt(omega2) * rng.standard_normal(psi.shape)
            psi, term, _ = _metropolis(chains, log_theta, sigma, psi, term, draw, mu, omega2)
        for _ in range(moves[1]):  # kernel 2: random walk on every component
            draw = psi + scale * rng.standard_normal(psi.shape)
            psi, term, accepted = _metropolis(chains, log_theta, sigma, psi, term, draw, mu, omega2)
            scale *= 1 + 0.4 * (accepted.mean() - TARGET_ACCEPTANCE)
        for _ in range(moves[2]):  # kernel 3: one component at a time
            for j in range(q):
                draw = psi.copy()
                draw[:, j] += scale[j] * rng.standard_normal(psi.shape[0])
                psi, term, _ = _metropolis(chains, log_theta, sigma, psi, term, draw, mu, omega2)
        s1 += gamma * (psi.mean(axis=0) - s1)
        s2 += gamma * ((psi**2).mean(axis=0) - s2)
        mu = s1.copy()
        omega2 = np.maximum(s2 - s1**2, 0.95 * omega2 if k < n_explore else 1e-8)
        log_theta[chains.columns] = mu
        f = chains.predict(log_theta, psi)
        log_theta[chains.fixed] += gamma * _fixed_step(chains, log_theta, sigma, psi, f)
        for i, (low, high) in log_bounds.items():
            log_theta[i] = np.clip(log_theta[i], low, high)
        f = chains.predict(log_theta, psi)
        sigma = np.exp(np.log(sigma) + gamma * (_sigma_step(chains, f, sigma) - np.log(sigma)))
        term = chains.data_term(f, sigma)
    return _record(
        model,
        data,
        log_theta,
        omega2,
        sigma,
        psi - mu,
        model_name,
        model_version,
        time.perf_counter() - started,
        n_explore + n_smooth,
    )


def _record(model, data, log_theta, omega2, sigma, eta, model_name, model_version, wall, iterations) -> FitRecord:
    objective = Foce(model, data)
    objective.eta = eta
    ofv = objective.ofv(objective.pack(np.exp(log_theta), omega2, sigma))
    phi = model.individual(np.exp(log_theta), objective.eta)
    return FitRecord(
        model=model_name,
        model_version=model_version,
        method="population-saem",
        converged=bool(np.isfinite(ofv)),
        minus2ll=float(ofv),
        n_observations=data.n_observations,
        n_subjects=len(data.ids),
        n_estimated=len(log_theta) + len(omega2) + len(sigma),
        theta={n: Estimate(float(np.exp(log_theta[i]))) for i, n in enumerate(model.theta_names)},
        omega={
            n: {
                "variance": float(omega2[k]),
                "cv_percent": float(100 * np.sqrt(np.expm1(omega2[k]))),
                "se_variance": None,
            }
            for k, n in enumerate(model.eta_names)
        },
        sigma=dict(zip(model.error.parameter_names, map(float, sigma))),
        individual={
            str(i): {n: float(phi[s, k]) for k, n in enumerate(model.individual_names)} for s, i in enumerate(data.ids)
        },
        warnings=["SAEM gives no standard errors here; minus2ll is the FOCE-I objective at the SAEM estimates"],
        data_selection={"saem_iterations": iterations},
        wall_time_s=wall,
    )
