"""A real trial's data analysed unadjusted and with PROCOVA (statsmodels OLS).

    unadjusted: outcome ~ 1 + T          PROCOVA: outcome ~ 1 + T + prognostic

T is 1 for the treatment arm; ``prognostic`` is each subject's twin-predicted control
outcome (for a chip study: the untreated response its calibrated twin predicts). The effect
is T's coefficient with its SE, (1 − α) t-interval and two-sided p; the variance reduction
is 1 − SE²(PROCOVA)/SE²(unadjusted), the share of the effect's variance the twin removed.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration.trial.errors import TrialError
from twin.userfile import MAX_DATASET_BYTES, read_user_text

_TREATED_LABELS = {"1", "t", "treatment", "treated", "active", "drug", "intervention"}
_CONTROL_LABELS = {"0", "c", "control", "placebo", "untreated", "vehicle"}


@dataclass(frozen=True)
class Effect:
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float
    df: int


@dataclass(frozen=True)
class TrialAnalysis:
    n_treatment: int
    n_control: int
    alpha: float
    unadjusted: Effect
    procova: Effect
    prognostic_slope: float
    correlation: float  # pooled within-arm correlation of outcome and prognostic score

    @property
    def variance_reduction(self) -> float:
        return 1.0 - (self.procova.se / self.unadjusted.se) ** 2


def _effect(result, alpha: float) -> Effect:
    low, high = result.conf_int(alpha)[1]
    return Effect(
        float(result.params[1]),
        float(result.bse[1]),
        float(low),
        float(high),
        float(result.pvalues[1]),
        int(result.df_resid),
    )


def analyze_trial(outcome, treated, prognostic, *, alpha: float = 0.05) -> TrialAnalysis:
    """Both analyses of one trial; ``treated`` is 0/1 per subject."""
    import statsmodels.api as sm  # heavy; only the analysis needs it

    y, t, m = (np.asarray(a, dtype=float) for a in (outcome, treated, prognostic))
    n_t, n_c = int(t.sum()), int((1 - t).sum())
    if n_t < 2 or n_c < 2 or len(y) < 5:
        raise TrialError(f"each arm needs at least 2 subjects and the trial 5; got {n_t} treated, {n_c} control")
    if not (0 < alpha < 0.5):
        raise TrialError(f"--alpha must be inside (0, 0.5); got {alpha}")
    unadjusted = sm.OLS(y, np.column_stack([np.ones_like(y), t])).fit()
    procova = sm.OLS(y, np.column_stack([np.ones_like(y), t, m])).fit()
    resid_y, resid_m = y - unadjusted.fittedvalues, m - sm.OLS(m, unadjusted.model.exog).fit().fittedvalues
    denominator = math.sqrt(float(resid_y @ resid_y) * float(resid_m @ resid_m))
    if denominator == 0:
        raise TrialError("the prognostic score is constant within each arm; it cannot adjust anything")
    return TrialAnalysis(
        n_t,
        n_c,
        alpha,
        _effect(unadjusted, alpha),
        _effect(procova, alpha),
        float(procova.params[2]),
        float(resid_y @ resid_m) / denominator,
    )


def _treated_flags(arm_values, column: str, treatment: str | None, where: str) -> np.ndarray:
    labels = [str(v).strip() for v in arm_values]
    levels = sorted(set(labels))
    if len(levels) != 2:
        raise TrialError(
            f"{where}: column {column!r} has {len(levels)} arm label(s) ({', '.join(levels[:5])}); "
            "fix: give a column with exactly two arms"
        )
    if treatment is None:
        guess = [lv for lv in levels if lv.lower() in _TREATED_LABELS]
        other = [lv for lv in levels if lv.lower() in _CONTROL_LABELS]
        if len(guess) != 1 or len(other) != 1:
            raise TrialError(
                f"{where}: cannot tell which of {levels[0]!r} and {levels[1]!r} is the treatment arm; "
                "fix: add --treatment LABEL"
            )
        treatment = guess[0]
    if treatment not in levels:
        raise TrialError(
            f"{where}: --treatment {treatment!r} is not an arm label of {column!r} "
            f"({levels[0]!r}, {levels[1]!r}); fix: use one of them"
        )
    return np.array([lab == treatment for lab in labels], dtype=float)


def load_trial_data(
    path: str | Path, *, outcome: str, arm: str, prognostic: str, treatment: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(outcome, treated 0/1, prognostic) from a CSV; rows with an empty cell are refused, not dropped."""
    import pandas as pd

    text = read_user_text(path, "trial data file", max_bytes=MAX_DATASET_BYTES, error=TrialError)
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise TrialError(f"{path}: not a readable CSV ({exc}); fix: save it as comma-separated text") from None
    for option, column in (("--outcome", outcome), ("--arm", arm), ("--prognostic", prognostic)):
        if column not in frame.columns:
            raise TrialError(
                f"{path}: no column {column!r} (columns: {', '.join(map(str, frame.columns[:20]))}); "
                f"fix: name the column with {option}"
            )
    numbers = {}
    for column in (outcome, prognostic):
        values = pd.to_numeric(frame[column].str.strip(), errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            row = int(bad[0])
            raise TrialError(
                f"{path}: column {column!r}, data row {row + 1}: {frame[column].iloc[row]!r} is not a "
                "finite number; fix: correct or remove the row"
            )
        numbers[column] = values
    return numbers[outcome], _treated_flags(frame[arm], arm, treatment, str(path)), numbers[prognostic]
