"""Replicate chips as a population: iterative two-stage (ITS) on batched per-chip sensitivities.

Each chip's parameters are log-normal around the population's, log θ_i = μ + η_i with
η_i ~ N(0, Ω) (Ω diagonal), and one residual error model per observable is shared by all chips.
ITS (Steimer et al. 1984; the EM form of Prague et al.) alternates

- E: every chip's conditional mode φ̂_i = argmin −2LL_i(φ) + (φ − μ)ᵀΩ⁻¹(φ − μ) and its
  conditional covariance C_i = (½·H_i)⁻¹, by Gauss–Newton/Levenberg steps taken for all chips
  at once (one batched Rodas4 run with forward sensitivities per step, warm-started from the
  previous modes), and
- M: μ = mean φ̂_i, Ω = mean[(φ̂_i − μ)² + diag C_i], the residual SDs by maximum likelihood at
  the modes,

until μ and Ω stop moving. The objective reported is the Laplace (FOCE-I-like) −2LL at the end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy.optimize import minimize

from calibration.errors import CalibrationError
from calibration.estimate.chip_jacobian import ChipsJacobian
from calibration.estimate.error_models import ErrorModel, minus2ll_terms
from calibration.io.lab import ChipData
from calibration.io.record import FitRecord
from calibration.uncertainty.information import natural_scale

MAX_OUTER = 60  # ITS iterations (it converges linearly; ~10–30 here)
MAX_INNER = 8  # batched Gauss–Newton steps of the E-step per ITS iteration (warm-started)
INNER_DECREMENT = 1e-4  # −2LL units: a chip's mode is found when a full step would gain less
OUTER_TOL = (
    5e-3  # largest change of μ (log units) and of Ω (relative to Ω + OMEGA_SCALE) that ends it: far inside the SEs
)
OMEGA_START = 0.1  # log-scale variance (CV ≈ 32 %) before the first M-step
OMEGA_FLOOR = 1e-6  # a variance the data cannot tell from zero stays positive (Ω⁻¹ finite)
OMEGA_SCALE = 0.01  # Ω changes are relative to Ω + this (a variance near zero creeps; CV 10 % is the scale)


@dataclass
class ChipModes:
    """The E-step's state: every chip's mode, its predictions, Jacobian and objective pieces."""

    phi: np.ndarray  # (n_chips, n) log parameters
    f: list[np.ndarray]
    jac: list[np.ndarray]
    data_m2ll: np.ndarray  # (n_chips,) −2LL of the data at the mode (without the prior)
    hessian: np.ndarray  # (n_chips, n, n) expected Hessian of the data −2LL


class ChipPopulation:
    """One population problem: chips, estimated names, fixed values and error models per observable."""

    def __init__(
        self,
        chips: Sequence[ChipData],
        model: str,
        names: Sequence[str],
        fix: Mapping[str, float],
        errors: Mapping[str, ErrorModel],
    ) -> None:
        self.chips, self.names, self.fix = list(chips), tuple(names), dict(fix)
        self.errors = dict(errors)
        self.jacobian = ChipsJacobian(self.chips, model, self.names)
        self.dv = [np.asarray(chip.values, dtype=float) for chip in self.chips]
        self.groups = [np.asarray(chip.observables, dtype=object) for chip in self.chips]
        self.sigma = {
            group: error.default_sigma(np.concatenate([dv[g == group] for dv, g in zip(self.dv, self.groups)]))
            for group, error in self.errors.items()
        }

    def variance(self, i: int, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """V and ∂V/∂f of chip i's observations at predictions f."""
        v, dvdf = np.empty_like(f), np.empty_like(f)
        for group, error in self.errors.items():
            rows = self.groups[i] == group
            v[rows] = error.variance(f[rows], self.sigma[group])
            dvdf[rows] = error.dvariance_df(f[rows], self.sigma[group])
        return v, dvdf

    def data_terms(self, i: int, f: np.ndarray, jac: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """Chip i's data −2LL, its gradient in φ and expected Hessian (Fisher scoring)."""
        v, dvdf = self.variance(i, f)
        r = self.dv[i] - f
        with np.errstate(all="ignore"):
            value = float(np.sum(minus2ll_terms(self.dv[i], f, v)))
            gradient = jac.T @ ((1 / v - r**2 / v**2) * dvdf - 2 * r / v)
            hessian = jac.T @ ((2 / v + dvdf**2 / v**2)[:, None] * jac)
        return (value if np.isfinite(value) else np.inf), gradient, hessian

    def solve(self, phi: np.ndarray, chips: Sequence[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        values = [{**self.fix, **dict(zip(self.names, np.exp(phi[k])))} for k in range(len(chips))]
        with np.errstate(all="ignore"):
            return self.jacobian.each(values, chips)

    def start(self, phi: np.ndarray) -> ChipModes:
        """Every chip's predictions and Jacobian at ``phi`` (one batched run)."""
        n_chips, n = phi.shape
        runs = self.solve(phi, list(range(n_chips)))
        return ChipModes(
            phi.copy(), [f for f, _ in runs], [j for _, j in runs], np.zeros(n_chips), np.zeros((n_chips, n, n))
        )

    def modes(self, previous: ChipModes, mu: np.ndarray, omega: np.ndarray) -> ChipModes:
        """The E-step: all chips' conditional modes by batched Levenberg–Marquardt steps from the
        previous modes (whose predictions and Jacobians are reused: they do not depend on μ, Ω)."""
        n_chips, n = previous.phi.shape
        inverse = np.diag(1 / omega)
        state = ChipModes(
            previous.phi.copy(), list(previous.f), list(previous.jac), np.zeros(n_chips), np.zeros((n_chips, n, n))
        )
        lam = np.full(n_chips, 1e-3)
        active = np.ones(n_chips, dtype=bool)
        for _ in range(MAX_INNER):
            steps, values = {}, {}
            for i in np.flatnonzero(active):
                value, g, h = self.data_terms(i, state.f[i], state.jac[i])
                eta = state.phi[i] - mu
                state.data_m2ll[i], state.hessian[i] = value, h
                g, h = g + 2 * inverse @ eta, h + 2 * inverse
                if 0.5 * g @ np.linalg.solve(h, g) < INNER_DECREMENT:
                    active[i] = False
                    continue
                steps[i] = -np.linalg.solve(h + lam[i] * np.diag(np.diag(h)), g)
                steps[i] *= 2.0 / max(2.0, float(np.max(np.abs(steps[i]))))  # at most a factor e² per step
                values[i] = value + eta @ inverse @ eta
            if not steps:
                break
            chosen = sorted(steps)
            trial = np.array([state.phi[i] + steps[i] for i in chosen])
            for k, (i, (f, jac)) in enumerate(zip(chosen, self.solve(trial, chosen))):
                eta = trial[k] - mu
                value = self.data_terms(i, f, jac)[0] + eta @ inverse @ eta
                if value <= values[i] + 1e-9:
                    state.phi[i], state.f[i], state.jac[i] = trial[k], f, jac
                    lam[i] = max(lam[i] / 10, 1e-7)
                else:
                    lam[i] *= 10
        for i in range(n_chips):  # the final pieces at the accepted modes
            state.data_m2ll[i], _, state.hessian[i] = self.data_terms(i, state.f[i], state.jac[i])
        return state

    def update_sigma(self, state: ChipModes) -> None:
        """Residual SDs of each observable's error model by maximum likelihood at the modes."""
        for group, error in self.errors.items():
            dv = np.concatenate([d[g == group] for d, g in zip(self.dv, self.groups)])
            f = np.concatenate([f[g == group] for f, g in zip(state.f, self.groups)])

            def objective(log_sigma, dv=dv, f=f, error=error):
                return float(np.sum(minus2ll_terms(dv, f, error.variance(f, np.exp(log_sigma)))))

            found = minimize(objective, np.log(self.sigma[group]), method="Nelder-Mead", options={"xatol": 1e-6})
            self.sigma[group] = np.exp(found.x)


def laplace_minus2ll(state: ChipModes, mu: np.ndarray, omega: np.ndarray) -> float:
    """Σ_i data −2LL + ηᵀΩ⁻¹η + log det Ω + log det(Ω⁻¹ + ½H_i): the Laplace approximation (FOCE-I form)."""
    eta = state.phi - mu
    total = float(np.sum(state.data_m2ll) + np.sum(eta**2 / omega))
    for h in state.hessian:
        total += float(np.sum(np.log(omega)) + np.linalg.slogdet(np.diag(1 / omega) + 0.5 * h)[1])
    return total


def fit_chip_population(
    problem: ChipPopulation, start: Mapping[str, float], *, model: str, model_version: str
) -> FitRecord:
    """ITS from ``start`` (population values); see the module docstring."""
    began = time.perf_counter()
    n_chips, n = len(problem.chips), len(problem.names)
    if n_chips < 3:
        raise CalibrationError(
            f"a population fit needs at least 3 chips to see between-chip variability; the data hold {n_chips}"
            " — fit them pooled or per chip"
        )
    mu = np.log([start[name] for name in problem.names])
    omega = np.full(n, OMEGA_START)
    state = problem.start(np.tile(mu, (n_chips, 1)))
    converged = False
    for _ in range(MAX_OUTER):
        state = problem.modes(state, mu, omega)
        phi = state.phi
        covariance = np.array([np.diag(np.linalg.inv(np.diag(1 / omega) + 0.5 * h)) for h in state.hessian])
        mu_new = phi.mean(axis=0)
        omega_new = np.maximum(np.mean((phi - mu_new) ** 2 + covariance, axis=0), OMEGA_FLOOR)
        problem.update_sigma(state)
        moved = max(np.max(np.abs(mu_new - mu)), np.max(np.abs(omega_new - omega) / (omega + OMEGA_SCALE)))
        mu, omega = mu_new, omega_new
        if moved < OUTER_TOL:
            converged = True
            break
    state = problem.modes(state, mu, omega)
    minus2ll = laplace_minus2ll(state, mu, omega)
    # SE of μ: the population spread over the chips (the ITS standard error)
    se_mu = np.sqrt((omega + np.mean(covariance, axis=0)) / n_chips)
    warnings = [] if converged else [f"the population fit did not converge in {MAX_OUTER} ITS iterations"]
    n_sigma = sum(len(s) for s in problem.sigma.values())
    return FitRecord(
        model=model,
        model_version=model_version,
        method="population-its",
        converged=converged,
        minus2ll=minus2ll,
        n_observations=sum(chip.n_observations for chip in problem.chips),
        n_subjects=n_chips,
        n_estimated=2 * n + n_sigma,
        theta={name: natural_scale(float(mu[k]), float(se_mu[k])) for k, name in enumerate(problem.names)},
        omega={
            name: {"variance": float(omega[k]), "cv_percent": float(100 * np.sqrt(np.exp(omega[k]) - 1))}
            for k, name in enumerate(problem.names)
        },
        sigma={
            f"{group}.{label}": float(value)
            for group, error in problem.errors.items()
            for label, value in zip(error.parameter_names, problem.sigma[group])
        },
        individual={
            chip.chip: {name: float(np.exp(state.phi[i, k])) for k, name in enumerate(problem.names)}
            for i, chip in enumerate(problem.chips)
        },
        warnings=warnings,
        wall_time_s=time.perf_counter() - began,
    )


def check_random(names: Sequence[str], random: Sequence[str] | None) -> None:
    """Every estimated parameter varies between chips here; others are fixed (``fix``)."""
    if random and set(random) != set(names):
        raise CalibrationError(
            f"a population fit of chips puts between-chip variability on every estimated parameter "
            f"({', '.join(names)}); estimate only {', '.join(random)} (--estimate) and fix the others (--fix)"
        )
