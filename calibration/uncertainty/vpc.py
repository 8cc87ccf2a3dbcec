"""Population-fit diagnostics as nlmixr2/xpose users expect: a visual predictive check (VPC) and the
individual random effects (η) with their shrinkage.

VPC (Holford 2005; percentile form of Bergstrand et al. 2011, without prediction correction): the
dataset's own design (doses, sampling times, subjects) is simulated ``n_replicates`` times from the
fitted model — θ, a new η ~ N(0, Ω) per subject, residual error from σ — and per time bin the observed
5th, 50th and 95th percentiles are set beside the 90 % interval of the same percentile over the
replicates. A model whose variability is right has the observed percentiles inside those intervals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibration.errors import CalibrationError
from calibration.estimate.error_models import ErrorModel
from calibration.estimate.population import lognormal_individual
from calibration.io.nonmem import NonmemProblem
from calibration.io.record import FitRecord

PERCENTILES = (5.0, 50.0, 95.0)


@dataclass(frozen=True)
class Vpc:
    """Per time bin: the observed percentiles and the 90 % interval of each over the replicates."""

    bin_edges_h: np.ndarray  # (n_bins + 1,)
    bin_time_h: np.ndarray  # median observation time in each bin
    observed: np.ndarray  # (n_bins, 3): 5th, 50th, 95th percentile of the data
    simulated: np.ndarray  # (n_bins, 3, 3): [percentile, (5 %, 50 %, 95 % over replicates)]
    times_h: np.ndarray  # every observation's time (for the scatter)
    values: np.ndarray  # every observation
    n_replicates: int

    def outside(self) -> np.ndarray:
        """(n_bins, 3) True where an observed percentile lies outside its simulated 90 % interval."""
        low, high = self.simulated[:, :, 0], self.simulated[:, :, 2]
        return (self.observed < low) | (self.observed > high)


@dataclass(frozen=True)
class Etas:
    """The individual η = log(φ_i / θ) of each parameter with a random effect, and its shrinkage."""

    values: dict[str, np.ndarray]
    omega_sd: dict[str, float]

    def shrinkage(self, name: str) -> float:
        """1 − SD(η̂) / ω (0: the data pin every subject; near 1: the η̂ say little)."""
        return float(1.0 - np.std(self.values[name], ddof=1) / self.omega_sd[name])


def individual_etas(record: FitRecord) -> Etas:
    if not record.omega or not record.individual:
        raise CalibrationError("η plots need a population fit (a record with ω and individual estimates)")
    values = {
        name: np.log([subject[name] / record.theta[name].estimate for subject in record.individual.values()])
        for name in record.omega
    }
    return Etas(values, {name: float(np.sqrt(entry["variance"])) for name, entry in record.omega.items()})


def vpc(
    problem: NonmemProblem,
    record: FitRecord,
    error: ErrorModel,
    *,
    n_replicates: int = 200,
    n_bins: int = 8,
    seed: int = 0,
) -> Vpc:
    """Simulate the dataset's design ``n_replicates`` times from ``record`` and bin by time."""
    if not record.omega:
        raise CalibrationError("a VPC needs a population fit (a record with ω)")
    names = tuple(problem.phi_names)
    random = tuple(name for name in names if name in record.omega)
    theta = np.array([record.theta[name].estimate for name in names])
    omega_sd = np.array([np.sqrt(record.omega[name]["variance"]) for name in random])
    sigma = np.array([record.sigma[name] for name in error.parameter_names])
    individual = lognormal_individual(names, random)
    rng = np.random.default_rng(seed)
    n_subjects = len(problem.ids)
    simulated = np.empty((n_replicates, *problem.dv.shape))
    for r in range(n_replicates):
        eta = rng.standard_normal((n_subjects, len(random))) * omega_sd
        f = problem.predict(individual(theta, eta))
        simulated[r] = f + np.sqrt(error.variance(f, sigma)) * rng.standard_normal(f.shape)
    times = problem.data["TIME"].to_numpy(dtype=float)[problem.rows][problem.mask]
    observed = problem.dv[problem.mask]
    edges = _bin_edges(times, n_bins)
    which = np.clip(np.searchsorted(edges, times, side="right") - 1, 0, len(edges) - 2)
    sims = simulated[:, problem.mask]  # (n_replicates, n_observations)
    kept = [b for b in range(len(edges) - 1) if np.any(which == b)]
    observed_p = np.array([np.percentile(observed[which == b], PERCENTILES) for b in kept])
    simulated_p = np.array(
        [np.percentile(np.percentile(sims[:, which == b], PERCENTILES, axis=1), PERCENTILES, axis=1).T for b in kept]
    )
    middle = np.array([np.median(times[which == b]) for b in kept])
    return Vpc(edges, middle, observed_p, simulated_p, times, observed, n_replicates)


def _bin_edges(times: np.ndarray, n_bins: int) -> np.ndarray:
    """Bins with about equal numbers of observations, cut between distinct sampling times."""
    distinct = np.unique(times)
    if distinct.size <= n_bins:
        middles = (distinct[1:] + distinct[:-1]) / 2
        return np.concatenate([[distinct[0] - 1e-9], middles, [distinct[-1] + 1e-9]])
    cuts = np.unique(np.quantile(times, np.linspace(0, 1, n_bins + 1)[1:-1]))
    return np.concatenate([[times.min() - 1e-9], cuts + 1e-9, [times.max() + 1e-9]])


@dataclass(frozen=True)
class Predictions:
    """Each observation beside its population prediction (η = 0) and individual prediction (η̂)."""

    observed: np.ndarray
    pred: np.ndarray
    ipred: np.ndarray


def predictions(problem: NonmemProblem, record: FitRecord) -> Predictions:
    names = tuple(problem.phi_names)
    typical = np.array([[record.theta[name].estimate for name in names]] * len(problem.ids))
    missing = [str(i) for i in problem.ids if str(i) not in record.individual]
    if missing:
        raise CalibrationError(f"the record has no individual estimates for subjects {', '.join(missing[:5])}")
    individual = np.array([[record.individual[str(i)][name] for name in names] for i in problem.ids])
    mask = problem.mask
    return Predictions(problem.dv[mask], problem.predict(typical)[mask], problem.predict(individual)[mask])
