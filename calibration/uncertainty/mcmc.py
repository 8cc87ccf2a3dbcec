"""MCMC on request (MODELS.md §4): emcee's affine-invariant ensemble on the log posterior.

The log posterior is −½·objective (the objective is −2LL plus the problem's Gaussian priors
on the log parameters), flat in the log parameters and −∞ outside the bounds. The walkers
start in a small ball around the MAP drawn from the Laplace covariance (2·H⁻¹), so the
burn-in is short. Summaries are on the natural scale: median and the 2.5/97.5 % quantiles.

    result = run_mcmc(problem, x_map, n_steps=2000, progress=lambda done, total: ...)
    attach_mcmc(problem, record, n_steps=2000)   # sets record.mcmc
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from calibration.errors import CalibrationError
from calibration.estimate.individual import IndividualProblem
from calibration.io.record import FitRecord, McmcSummary
from calibration.uncertainty.information import from_hessian, numerical_hessian
from calibration.uncertainty.profile import optimum

MIN_CHAIN_TAUS = 50  # emcee's rule: τ is trustworthy when the chain is ≥ 50 τ long
ACCEPTANCE_RANGE = (0.1, 0.8)


@dataclass
class McmcResult:
    names: tuple[str, ...]
    samples: np.ndarray  # (n_draws, n_parameters), log scale, burn-in discarded, walkers flattened
    acceptance_fraction: float
    autocorr_time: np.ndarray | None  # steps, per parameter
    autocorr_reliable: bool
    n_walkers: int
    n_steps: int
    burn: int
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, dict[str, float]]:
        natural = np.exp(self.samples)
        q = np.percentile(natural, [2.5, 50.0, 97.5], axis=0)
        return {
            name: {
                "median": float(q[1, k]),
                "ci95": [float(q[0, k]), float(q[2, k])],
                "log_mean": float(self.samples[:, k].mean()),
                "log_sd": float(self.samples[:, k].std(ddof=1)),
            }
            for k, name in enumerate(self.names)
        }

    def to_dict(self) -> dict:
        tau = None if self.autocorr_time is None else dict(zip(self.names, self.autocorr_time.tolist()))
        return {
            "sampler": "emcee ensemble (stretch move)",
            "n_walkers": self.n_walkers,
            "n_steps": self.n_steps,
            "burn": self.burn,
            "n_draws": int(self.samples.shape[0]),
            "acceptance_fraction": self.acceptance_fraction,
            "autocorr_time": tau,
            "autocorr_reliable": self.autocorr_reliable,
            "summary": self.summary(),
            "notes": list(self.notes),
        }


def log_posterior(problem: IndividualProblem) -> Callable[[np.ndarray], float]:
    bounds = problem.log_bounds()
    low = np.array([-np.inf if b[0] is None else b[0] for b in bounds])
    high = np.array([np.inf if b[1] is None else b[1] for b in bounds])

    def log_prob(x: np.ndarray) -> float:
        if np.any(x < low) or np.any(x > high):
            return -np.inf
        value = problem.objective(x)
        return -0.5 * value if np.isfinite(value) else -np.inf

    return log_prob


def laplace_covariance(problem: IndividualProblem, x_map: np.ndarray) -> np.ndarray | None:
    names = [*problem.names, *problem.error.parameter_names]
    return from_hessian(numerical_hessian(problem.objective, x_map), names).covariance


def run_mcmc(
    problem: IndividualProblem,
    x_map: np.ndarray,
    *,
    n_steps: int = 2000,
    n_walkers: int | None = None,
    covariance: np.ndarray | None = None,
    burn: int | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> McmcResult:
    """Sample the posterior; ``burn`` defaults to a quarter of the steps."""
    x_map = np.asarray(x_map, dtype=float)
    ndim = x_map.size
    if n_steps < 20:
        raise CalibrationError(f"--mcmc {n_steps}: too few steps for a posterior summary; ask for at least 200")
    n_walkers = n_walkers or max(4 * ndim, 16)
    n_walkers += n_walkers % 2
    burn = n_steps // 4 if burn is None else burn
    if covariance is None:
        covariance = laplace_covariance(problem, x_map)
    rng = np.random.default_rng(seed)
    log_prob = log_posterior(problem)
    start = _initial_ball(x_map, covariance, n_walkers, rng, log_prob)
    import emcee  # here, not at the top: emcee loads scipy.stats (~1 s), and every fit command imports this module

    sampler = emcee.EnsembleSampler(n_walkers, ndim, log_prob)
    sampler.random_state = np.random.RandomState(seed).get_state()  # reproducible stretch moves
    for k, _ in enumerate(sampler.sample(start, iterations=n_steps), start=1):
        if progress and (k % max(n_steps // 100, 1) == 0 or k == n_steps):
            progress(k, n_steps)
    chain = sampler.get_chain(discard=burn)
    names = (*problem.names, *problem.error.parameter_names)
    tau, reliable = _autocorr(chain)
    result = McmcResult(
        names,
        chain.reshape(-1, ndim),
        float(np.mean(sampler.acceptance_fraction)),
        tau,
        reliable,
        n_walkers,
        n_steps,
        burn,
    )
    if not reliable:
        longest = "?" if tau is None else f"{np.nanmax(tau):.0f}"
        result.notes.append(
            f"the chain ({n_steps - burn} steps after burn-in) is shorter than {MIN_CHAIN_TAUS} "
            f"autocorrelation times (τ ≈ {longest} steps); the summaries are rough — run longer"
        )
    if not ACCEPTANCE_RANGE[0] <= result.acceptance_fraction <= ACCEPTANCE_RANGE[1]:
        result.notes.append(
            f"the acceptance fraction {result.acceptance_fraction:.2f} is outside "
            f"{ACCEPTANCE_RANGE[0]}–{ACCEPTANCE_RANGE[1]}; the sampler mixes poorly here"
        )
    return result


def _initial_ball(x_map, covariance, n_walkers, rng, log_prob) -> np.ndarray:
    """Walkers from N(x_map, cov/4) (a small diagonal ball without a covariance), each inside the support."""
    ndim = x_map.size
    if covariance is None or not np.all(np.isfinite(covariance)):
        covariance = np.eye(ndim) * 1e-2
    root = np.linalg.cholesky(covariance / 4 + 1e-12 * np.eye(ndim))
    start = np.empty((n_walkers, ndim))
    for w in range(n_walkers):
        for _ in range(100):
            candidate = x_map + root @ rng.standard_normal(ndim)
            if np.isfinite(log_prob(candidate)):
                break
        else:
            candidate = x_map + 1e-6 * rng.standard_normal(ndim)
        start[w] = candidate
    return start


def _autocorr(chain: np.ndarray) -> tuple[np.ndarray | None, bool]:
    import emcee

    try:
        return emcee.autocorr.integrated_time(chain, c=5, tol=MIN_CHAIN_TAUS, quiet=False), True
    except emcee.autocorr.AutocorrError:
        tau = emcee.autocorr.integrated_time(chain, c=5, tol=0)  # an estimate, flagged as unreliable
        return (tau if np.all(np.isfinite(tau)) else None), False


def attach_mcmc(
    problem: IndividualProblem,
    record: FitRecord,
    *,
    n_steps: int,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> McmcResult:
    """Sample around the record's MAP; keep its summary as ``record.mcmc`` and any caveat as a warning."""
    result = run_mcmc(problem, optimum(problem, record), n_steps=n_steps, seed=seed, progress=progress)
    record.mcmc = McmcSummary.from_dict(result.to_dict())
    record.warnings += [f"MCMC: {note}" for note in result.notes]
    return result
