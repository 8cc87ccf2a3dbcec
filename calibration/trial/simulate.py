"""Many virtual two-arm trials at once, each analysed unadjusted and with PROCOVA.

Per subject (Schuler et al. 2021's setting): the twin predicts the subject's control outcome
M (standardised; its scale cancels in the regression), and the observed outcome is

    Y = control_mean + effect·T + sd·(ρ·M + √(1 − ρ²)·ε),     M, ε ~ N(0, 1)

so corr(M, Y) = ρ within an arm. Each trial is analysed twice, both exactly as OLS would:

- unadjusted: Y ~ 1 + T (two-sample t-test, df n − 2);
- PROCOVA: Y ~ 1 + T + M (ANCOVA on the prognostic score, df n − 3). With within-arm sums
  Smm, Smy, Syy: slope b = Smy/Smm, effect = (ȳt − ȳc) − b·(m̄t − m̄c),
  s² = (Syy − Smy²/Smm)/(n − 3), SE² = s²·(1/nt + 1/nc + (m̄t − m̄c)²/Smm).

Trials are rows of numpy arrays (vectorised, in chunks that bound memory); a per-trial
statsmodels loop gives the same numbers (tests/calibration/test_trial.py) far more slowly
(benchmarks/bench_translation.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

_CHUNK_DRAWS = 4_000_000  # subject draws per chunk (×4 arrays of float64 ≈ 128 MB)


@dataclass(frozen=True)
class Estimates:
    """One analysis over many trials: arrays with one entry per trial."""

    effect: np.ndarray
    se: np.ndarray
    p_value: np.ndarray

    def rejection_rate(self, alpha: float) -> float:
        return float(np.mean(self.p_value < alpha))


@dataclass(frozen=True)
class SimulatedTrials:
    n_treatment: int
    n_control: int
    unadjusted: Estimates
    procova: Estimates


def _within(a_t, a_c, b_t, b_c):
    """Σ within-arm cross products of a and b, per trial (rows)."""
    return np.einsum("ij,ij->i", a_t - a_t.mean(1, keepdims=True), b_t - b_t.mean(1, keepdims=True)) + np.einsum(
        "ij,ij->i", a_c - a_c.mean(1, keepdims=True), b_c - b_c.mean(1, keepdims=True)
    )


def _p_two_sided(t, df):
    return 2.0 * stats.t.sf(np.abs(t), df)


def analyse_arms(y_t, y_c, m_t, m_c) -> tuple[Estimates, Estimates]:
    """Unadjusted and PROCOVA estimates for trials given as rows of per-arm arrays."""
    n_t, n_c = y_t.shape[1], y_c.shape[1]
    n = n_t + n_c
    diff_y = y_t.mean(1) - y_c.mean(1)
    diff_m = m_t.mean(1) - m_c.mean(1)
    syy, smy, smm = _within(y_t, y_c, y_t, y_c), _within(m_t, m_c, y_t, y_c), _within(m_t, m_c, m_t, m_c)
    se_raw = np.sqrt(syy / (n - 2) * (1 / n_t + 1 / n_c))
    slope = smy / smm
    effect = diff_y - slope * diff_m
    s2 = np.maximum(syy - smy * slope, 0.0) / (n - 3)  # rounding can leave −0 for an exact fit
    se_adj = np.sqrt(s2 * (1 / n_t + 1 / n_c + diff_m**2 / smm))
    return (
        Estimates(diff_y, se_raw, _p_two_sided(diff_y / se_raw, n - 2)),
        Estimates(effect, se_adj, _p_two_sided(effect / se_adj, n - 3)),
    )


def _draw(rng, trials, n, mean, sd, rho):
    m = rng.standard_normal((trials, n))
    y = mean + sd * (rho * m + np.sqrt(1.0 - rho * rho) * rng.standard_normal((trials, n)))
    return y, m


def simulate_trials(
    *,
    n_treatment: int,
    n_control: int,
    effect: float,
    sd: float,
    correlation: float,
    n_trials: int,
    seed: int = 0,
    control_mean: float = 0.0,
) -> SimulatedTrials:
    """``n_trials`` virtual trials under the module's model; same seed, same trials."""
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_DRAWS // (n_treatment + n_control))
    parts: list[tuple[Estimates, Estimates]] = []
    for start in range(0, n_trials, chunk):
        rows = min(chunk, n_trials - start)
        y_t, m_t = _draw(rng, rows, n_treatment, control_mean + effect, sd, correlation)
        y_c, m_c = _draw(rng, rows, n_control, control_mean, sd, correlation)
        parts.append(analyse_arms(y_t, y_c, m_t, m_c))

    def joined(i: int) -> Estimates:
        return Estimates(*(np.concatenate([getattr(p[i], f) for p in parts]) for f in ("effect", "se", "p_value")))

    return SimulatedTrials(n_treatment, n_control, joined(0), joined(1))


@dataclass(frozen=True)
class SizeKeepingPower:
    """Arm sizes at which PROCOVA matches the unadjusted power of the original design."""

    target_power: float
    n_treatment: int
    n_control: int
    scale: float  # new size / original size (both arms keep their ratio)


def procova_size_keeping_power(
    *,
    n_treatment: int,
    n_control: int,
    effect: float,
    sd: float,
    correlation: float,
    target_power: float,
    alpha: float,
    n_trials: int = 4000,
    seed: int = 0,
    grid: int = 16,
) -> SizeKeepingPower:
    """Simulated PROCOVA power over a grid of sizes (allocation ratio kept), then the size where
    it reaches ``target_power``: probit(power) is fitted as a line in √n (exact for a z-test:
    power = Φ(|δ|·√(n·k)/σ_res − z)), which smooths the simulation noise of each grid point."""
    scales = np.linspace(0.1, 1.2, grid)
    sizes, powers = [], []
    for i, scale in enumerate(scales):
        nt, nc = max(3, round(n_treatment * scale)), max(3, round(n_control * scale))
        sim = simulate_trials(
            n_treatment=nt,
            n_control=nc,
            effect=effect,
            sd=sd,
            correlation=correlation,
            n_trials=n_trials,
            seed=seed + 1 + i,
        )
        sizes.append(nt + nc)
        powers.append(sim.procova.rejection_rate(alpha))
    sizes_a, powers_a = np.asarray(sizes, float), np.asarray(powers)
    usable = (powers_a > 0.02) & (powers_a < 0.98)
    if usable.sum() < 3 or not 0.02 < target_power < 0.98:
        raise ValueError(
            f"power {target_power:.3f} is too close to 0 or 1 for the size search; "
            "choose an effect or arm sizes that give a power between 5 % and 95 %"
        )
    slope, intercept = np.polyfit(np.sqrt(sizes_a[usable]), stats.norm.ppf(powers_a[usable]), 1)
    total = ((stats.norm.ppf(target_power) - intercept) / slope) ** 2
    scale = total / (n_treatment + n_control)
    return SizeKeepingPower(
        target_power, int(np.ceil(n_treatment * scale)), int(np.ceil(n_control * scale)), float(scale)
    )
