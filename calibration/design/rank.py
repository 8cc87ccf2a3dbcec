"""Experiment design: rank candidate experiments by what they are expected to teach.

Utility (Bayesian D-optimality over the posterior): for K posterior draws θ_k,

    U(d) = mean_k [ log det Σ_S − log det ((Σ⁻¹ + F_d(θ_k))⁻¹)_S ]

with Σ the current log-scale posterior covariance, F_d = JᵀWJ the Fisher information of
candidate d's observations (J = ∂y/∂log θ by central differences, W = 1/residual variance)
and S the named parameters of interest. With S = all parameters this is
mean_k log det(F_d + Σ⁻¹) − log det Σ⁻¹; half of it is the expected information gain in
nats. With ``draws=1`` it is the classical (point-estimate) design.

Model discrimination (``rival=``): U(d) = Σ_obs (μ_A − μ_B)² / (v_A + v_B), the expected
squared difference of the two models' predictions over their predictive variance (spread
over the posterior draws plus residual variance), summed over the candidate's observations.

Ask/tell, as PINTS optimisers: ``proposals = designer.ask(n)``; run them; ``designer.tell(fit)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from calibration.design.posterior import Posterior
from calibration.design.sensitivity import Grid, fisher_by_schedule, simulate_grid
from calibration.design.space import Candidate, DesignSpace
from calibration.errors import CalibrationError
from calibration.io.record import FitRecord

DEFAULT_DRAWS = 16
BAND = (5.0, 95.0)  # the predicted observables' 90 % band over the posterior draws


@dataclass
class Proposal:
    candidate: Candidate
    utility: float
    utility_kind: str  # "bayesian-d" | "point-d" | "discrimination"
    predicted: dict[str, dict[str, list[float]]]  # observable → time_h, mean, p05, p95
    parameters: dict[str, dict[str, float]]  # name → estimate, sd, expected_sd, rse_percent, expected_rse_percent

    def to_dict(self) -> dict[str, Any]:
        return {
            "design": self.candidate.to_dict(),
            "utility": self.utility,
            "utility_kind": self.utility_kind,
            "predicted": self.predicted,
            "parameters": self.parameters,
        }


def as_posterior(fit: FitRecord | Posterior) -> Posterior:
    return fit if isinstance(fit, Posterior) else Posterior.from_record(fit)


def d_gain(fisher: np.ndarray, covariance: np.ndarray, interest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gain per draw and candidate (..., ), post-experiment covariance (..., P, P)) for F of shape (..., P, P)."""
    precision = np.linalg.inv(covariance)
    after = np.linalg.inv(precision + fisher)
    sub = after[..., interest[:, None], interest[None, :]]
    gain = np.linalg.slogdet(covariance[np.ix_(interest, interest)])[1] - np.linalg.slogdet(sub)[1]
    return gain, after


@dataclass
class Designer:
    space: DesignSpace
    prior: FitRecord | Posterior
    draws: int = DEFAULT_DRAWS
    seed: int = 0
    interest: Sequence[str] | None = None  # parameters whose information counts (default: all estimated)
    rival: FitRecord | Posterior | None = None  # a second model: rank by power to discriminate instead
    engine: str = "batch"
    history: list[tuple[list[Proposal], Posterior]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.posterior = as_posterior(self.prior)
        self.rival_posterior = None if self.rival is None else as_posterior(self.rival)
        unknown = sorted(set(self.interest or ()) - set(self.posterior.names))
        if unknown:
            raise CalibrationError(
                f"parameter {', '.join(unknown)} is not estimated in the fit; "
                f"choose from {', '.join(self.posterior.names)}"
            )
        self._pending: list[Proposal] = []

    # ---- ask / tell -------------------------------------------------------------------
    def ask(self, n: int = 1) -> list[Proposal]:
        """The ``n`` experiments to run next, on distinct free chips, chosen greedily: each one
        after the first is scored with the information of those already chosen added."""
        if n > len(self.space.chips):
            raise CalibrationError(
                f"asked for {n} experiments but the space has {len(self.space.chips)} free "
                "chip(s); free more chips or ask for fewer"
            )
        chosen: list[Proposal] = []
        extra = None
        for _ in range(n):
            ranked = self.rank(extra_fisher=extra, exclude_chips={p.candidate.chip for p in chosen})
            best = ranked[0]
            chosen.append(best)
            if self.rival_posterior is None:
                add = self._fisher[(best.candidate.dose_um, best.candidate.schedule)]
                extra = add if extra is None else extra + add
        self._pending = chosen
        return chosen

    def tell(self, fit: FitRecord | Posterior, ran: Sequence[Proposal] | None = None) -> None:
        """The fit after the experiments ran: it becomes the posterior; their chips are no longer free
        (unless that would leave none: then the chips are taken to be reusable, e.g. after a media change)."""
        ran = self._pending if ran is None else list(ran)
        self.history.append((ran, self.posterior))
        self.posterior = as_posterior(fit)
        used = {p.candidate.chip for p in ran}
        if used and used < set(self.space.chips):
            self.space = self.space.without_chips(used)
        self._pending = []

    # ---- ranking ----------------------------------------------------------------------
    def rank(self, extra_fisher: np.ndarray | None = None, exclude_chips: set[str] | None = None) -> list[Proposal]:
        """Every distinct feasible experiment, best first."""
        candidates = [c for c in self.space.candidates() if c.chip not in (exclude_chips or set())]
        if not candidates:
            raise CalibrationError("no feasible candidate is left on the remaining free chips; free more chips")
        distinct = _distinct(candidates)
        self._prepare()
        utilities = self._utilities(distinct, extra_fisher)
        order = np.argsort(-utilities, kind="stable")
        return [self._proposal(distinct[i], float(utilities[i]), extra_fisher) for i in order]

    def _prepare(self) -> None:
        """Simulate once per posterior and space (ask(n) and rank() reuse it)."""
        key = (id(self.posterior), id(self.space))
        if getattr(self, "_prepared", None) != key:
            self._simulate(_distinct(self.space.candidates()))
            self._prepared = key

    def _simulate(self, candidates: list[Candidate]) -> None:
        post = self.posterior
        self._draws = post.draws(self.draws, self.seed)
        doses = sorted({c.dose_um for c in candidates})
        times = sorted({t for c in candidates for t in c.sample_times_h})
        observables = self.space.observables
        self._grid = simulate_grid(
            post, self._draws, doses, times, observables, self.space.constants, engine=self.engine
        )
        self._residual = [post.residual(o, self.space.errors) for o in observables]
        schedules = {c.schedule: c.sample_times_h for c in candidates}
        by_schedule = fisher_by_schedule(self._grid, schedules, self._residual)
        self._fisher = {(d, s): by_schedule[s][:, self._grid.dose_index(d)] for d in doses for s in schedules}
        if self.rival_posterior is not None:
            rival = self.rival_posterior
            self._rival_grid = simulate_grid(
                rival,
                rival.draws(self.draws, self.seed + 1),
                doses,
                times,
                observables,
                self.space.constants,
                sensitivities=False,
                engine=self.engine,
            )
            self._rival_residual = [rival.residual(o, self.space.errors) for o in observables]

    def _interest_index(self) -> np.ndarray:
        names = self.posterior.names
        return np.array([names.index(n) for n in (self.interest or names)])

    def _utilities(self, candidates: list[Candidate], extra: np.ndarray | None) -> np.ndarray:
        if self.rival_posterior is not None:
            return np.array([self._discrimination(c) for c in candidates])
        fisher = np.stack([self._fisher[(c.dose_um, c.schedule)] for c in candidates], axis=1)  # (K, C, P, P)
        covariance, index = self.posterior.covariance_log, self._interest_index()
        if extra is None:
            return d_gain(fisher, covariance, index)[0].mean(axis=0)
        # score only what this candidate adds to the experiments already chosen in this batch
        gain = d_gain(fisher + extra[:, None], covariance, index)[0] - d_gain(extra, covariance, index)[0][:, None]
        return gain.mean(axis=0)

    def _discrimination(self, candidate: Candidate) -> float:
        mu_a, var_a = _predictive(self._grid, candidate, self._residual)
        mu_b, var_b = _predictive(self._rival_grid, candidate, self._rival_residual)
        return float(np.sum((mu_a - mu_b) ** 2 / (var_a + var_b)))

    def _proposal(self, candidate: Candidate, utility: float, extra: np.ndarray | None) -> Proposal:
        post = self.posterior
        fisher = self._fisher[(candidate.dose_um, candidate.schedule)] + (0 if extra is None else extra)
        _, after = d_gain(fisher, post.covariance_log, self._interest_index())
        expected_sd = np.sqrt(np.diag(after.mean(axis=0)))
        parameters = {
            name: {
                "estimate": float(np.exp(post.mean_log[i])),
                "sd": float(np.exp(post.mean_log[i]) * post.sd_log[i]),
                "expected_sd": float(np.exp(post.mean_log[i]) * expected_sd[i]),
                "rse_percent": float(100 * post.sd_log[i]),
                "expected_rse_percent": float(100 * expected_sd[i]),
            }
            for i, name in enumerate(post.names)
        }
        kind = "discrimination" if self.rival_posterior is not None else ("bayesian-d" if self.draws > 1 else "point-d")
        return Proposal(candidate, utility, kind, _predicted(self._grid, candidate), parameters)


def _distinct(candidates: list[Candidate]) -> list[Candidate]:
    """One candidate per (dose, schedule): the sample volume and the (identical) chips do not change
    what is learnt, so keep the smallest feasible volume on the first chip that allows it."""
    best: dict[tuple[float, str], Candidate] = {}
    for c in candidates:
        key = (c.dose_um, c.schedule)
        if key not in best or c.sample_volume_ml < best[key].sample_volume_ml:
            best[key] = c
    return list(best.values())


def _slice(grid: Grid, candidate: Candidate) -> np.ndarray:
    return grid.values[:, grid.dose_index(candidate.dose_um)][..., grid.time_index(candidate.sample_times_h)]


def _predicted(grid: Grid, candidate: Candidate) -> dict[str, dict[str, list[float]]]:
    values = _slice(grid, candidate)  # (K, O, n)
    low, high = np.percentile(values, BAND, axis=0)
    mean = values.mean(axis=0)
    return {
        o: {
            "time_h": list(candidate.sample_times_h),
            "mean": mean[j].tolist(),
            "p05": low[j].tolist(),
            "p95": high[j].tolist(),
        }
        for j, o in enumerate(grid.observables)
    }


def _predictive(grid: Grid, candidate: Candidate, residual) -> tuple[np.ndarray, np.ndarray]:
    values = _slice(grid, candidate)
    mean = values.mean(axis=0)
    add = np.array([r[0] for r in residual])[:, None]
    cv = np.array([r[1] for r in residual])[:, None]
    return mean, values.var(axis=0) + add**2 + (cv * mean) ** 2 + 1e-300
