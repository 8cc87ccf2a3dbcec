"""Sample size of a two-arm trial with and without a prognostic covariate (PROCOVA).

Power of the two-sided level-α t-test of the effect δ with residual SD σ_res:

    power = P(|T'| > t_{1−α/2, df}),  T' ~ noncentral t(df, δ / (σ_res·√(1/nt + 1/nc)))

unadjusted: σ_res = σ, df = n − 2; PROCOVA: σ_res = σ·√(1 − ρ²), df = n − 3 (Schuler et al.
2021, Int J Biostat: the prognostic covariate shrinks the needed size by about 1 − ρ²;
the small extra variance of estimating the slope is left out, as there). Sizes are the
smallest control arm (treatment = ⌈ratio × control⌉) reaching the power.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from calibration.trial.errors import TrialError

MAX_ARM = 10_000_000


@dataclass(frozen=True)
class ArmSizes:
    n_treatment: int
    n_control: int
    power: float  # achieved at these sizes

    @property
    def total(self) -> int:
        return self.n_treatment + self.n_control


@dataclass(frozen=True)
class SizeResult:
    unadjusted: ArmSizes
    procova: ArmSizes
    correlation: float

    @property
    def reduction(self) -> float:
        """PROCOVA total / unadjusted total (about 1 − ρ²)."""
        return self.procova.total / self.unadjusted.total


def t_test_power(
    *, n_treatment: int, n_control: int, effect: float, sd_residual: float, alpha: float, covariates: int = 0
) -> float:
    df = n_treatment + n_control - 2 - covariates
    noncentrality = abs(effect) / (sd_residual * math.sqrt(1 / n_treatment + 1 / n_control))
    critical = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(critical, df, noncentrality) + stats.nct.cdf(-critical, df, noncentrality))


def _smallest(effect, sd_residual, alpha, power, ratio, covariates) -> ArmSizes:
    def achieved(n_c: int) -> float:
        return t_test_power(
            n_treatment=max(2, math.ceil(ratio * n_c)),
            n_control=n_c,
            effect=effect,
            sd_residual=sd_residual,
            alpha=alpha,
            covariates=covariates,
        )

    low, high = 2, 4
    while achieved(high) < power:  # doubling, then bisection on the monotone power curve
        low, high = high, high * 2
        if high > MAX_ARM:
            raise TrialError(f"more than {MAX_ARM:,} per arm would be needed; fix: a larger effect or lower power")
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if achieved(mid) < power else (low, mid)
    n_c = low if achieved(low) >= power else high
    return ArmSizes(max(2, math.ceil(ratio * n_c)), n_c, achieved(n_c))


def sample_size(
    *, effect: float, sd: float, correlation: float, power: float = 0.8, alpha: float = 0.05, ratio: float = 1.0
) -> SizeResult:
    """Arm sizes reaching ``power`` unadjusted and with PROCOVA (module docstring)."""
    checks = [
        (effect != 0 and math.isfinite(effect), "--effect must be a finite non-zero difference"),
        (sd > 0 and math.isfinite(sd), "--sd must be a finite positive standard deviation"),
        (-1 < correlation < 1, "--correlation must be inside (−1, 1)"),
        (0 < power < 1, "--power must be inside (0, 1), e.g. 0.8"),
        (0 < alpha < 0.5, "--alpha must be inside (0, 0.5), e.g. 0.05"),
        (0.01 <= ratio <= 100, "--ratio (treatment : control) must be in 0.01–100"),
    ]
    for ok, message in checks:
        if not ok:
            raise TrialError(message)
    sd_procova = sd * math.sqrt(1 - correlation**2)
    return SizeResult(
        _smallest(effect, sd, alpha, power, ratio, 0),
        _smallest(effect, sd_procova, alpha, power, ratio, 1),
        correlation,
    )
