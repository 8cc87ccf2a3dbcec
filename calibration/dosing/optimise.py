"""Dose optimisation under posterior uncertainty (issue 5, part 6), for a patient or a chip.

Patient: the population prior — the patient's typical one-compartment PK from the drug
library (covariates, genotypes, co-medication; twin.patients) with log-normal BSV, or the θ
and Ω of a population fit record — is updated with the patient's own levels (a NONMEM-style
dataset) to the MAP estimate; the Laplace approximation (covariance 2·H⁻¹ of −2 log
posterior on the log scale) is sampled, and every regimen of the menu (dose × interval) is
scored by its probability of target attainment, PTA = P(steady-state metric in the window
| levels). A regimen is safe when the toxicity margin (chip EC50 / unbound Cmax,ss) is at
or above ``min_margin`` in at least 95 % of the posterior; the plan is the safe regimen of
highest PTA (ties: the smaller daily dose). Residual error is fixed (default 20 %
proportional): a handful of levels cannot estimate it.

Chip: the fit record's estimates and covariance (log scale) are the posterior; one bolus of
D µM into the medium at the start of the span is scored by P(metric over the span in the
window), metric ``conc`` (time-averaged medium concentration), ``cmin`` or ``cmax``, and is
safe when viability at the end of the span stays above ``viability_floor`` in ≥ 95 %.
An infeasible target raises CalibrationError naming the best candidate and what to change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from calibration.errors import CalibrationError
from calibration.estimate.error_models import ErrorModel
from calibration.estimate.individual import IndividualProblem
from calibration.io.nonmem import NonmemProblem
from calibration.uncertainty.information import numerical_hessian
from twin.catalogue import get_model
from twin.chip import Dose, simulate_chips
from twin.chip.api import ChipRun
from twin.patients import IndividualPK, Regimen, exposure, patient_pk

PATIENT_METRICS = {"auc": ("auc_tau_ss", "mg·h/L"), "ctrough": ("ctrough_ss", "mg/L"), "cmax": ("cmax_ss", "mg/L")}
CHIP_METRICS = {"conc": "µM", "cmin": "µM", "cmax": "µM"}
LIBRARY_BSV_CV = {"cl": 0.30, "v": 0.20, "ka": 0.40}  # twin.patients.PopulationSpec defaults
SAFE_QUANTILE = 0.05  # safe: the margin (or viability) fails in at most 5 % of the posterior
CHIP_CONSTANTS = {"V_m0": 1.0, "V_c": 0.0034, "N_cells": 1.0, "kla": 5.0}


@dataclass(frozen=True)
class Window:
    metric: str
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.metric} {self.low:g}–{self.high:g}"


def parse_window(text: str, metrics: Mapping[str, str] | None = None) -> Window:
    """``"auc=40:60"`` → that window; ``"auc=50"`` → 40–62.5 (80–125 %)."""
    allowed = metrics or {**{k: v[1] for k, v in PATIENT_METRICS.items()}, **CHIP_METRICS}
    name, _, window = text.partition("=")
    name = name.strip().lower()
    try:
        parts = [float(p) for p in window.split(":")]
    except ValueError:
        parts = []
    if name not in allowed or len(parts) not in (1, 2):
        raise CalibrationError(
            f"cannot read target {text!r}; write METRIC=LOW:HIGH with METRIC one of "
            f"{', '.join(allowed)}, e.g. auc=40:60"
        )
    low, high = (0.8 * parts[0], 1.25 * parts[0]) if len(parts) == 1 else parts
    if not 0 < low < high:
        raise CalibrationError(f"target {text!r}: the window needs 0 < LOW < HIGH")
    return Window(name, low, high)


@dataclass
class Posterior:
    """Laplace approximation on the log scale: log θ ~ N(mean, cov)."""

    names: tuple[str, ...]
    mean: np.ndarray
    cov: np.ndarray
    prior: dict[str, tuple[float, float]] = field(default_factory=dict)

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        draws = rng.multivariate_normal(self.mean, self.cov, size=n, method="eigh")
        return {name: np.exp(draws[:, k]) for k, name in enumerate(self.names)}

    def summary(self) -> dict[str, dict[str, float]]:
        sd = np.sqrt(np.diag(self.cov))
        out = {}
        for k, name in enumerate(self.names):
            out[name] = {
                "estimate": float(np.exp(self.mean[k])),
                "ci95": [float(np.exp(self.mean[k] - 1.96 * sd[k])), float(np.exp(self.mean[k] + 1.96 * sd[k]))],
            }
            if name in self.prior:
                out[name].update(prior_median=self.prior[name][0], prior_log_sd=self.prior[name][1])
        return out


def library_prior(drug, patient, cv: Mapping[str, float] | None = None) -> tuple[dict, IndividualPK]:
    """The patient's typical CL, V, ka (twin.patients) with log-normal BSV (CV, default library's)."""
    pk, _ = patient_pk(drug, patient)
    cv = {**LIBRARY_BSV_CV, **(cv or {})}
    typical = {"cl": pk.cl_l_per_h, "v": pk.v_l, "ka": pk.ka_per_h}
    return {n: (float(np.ravel(typical[n])[0]), float(np.sqrt(np.log1p(cv[n] ** 2)))) for n in typical}, pk


def record_prior(record) -> dict[str, tuple[float, float]]:
    """θ as the medians and √ω² as the log SDs of a population fit record (dict or FitRecord)."""
    document = record if isinstance(record, dict) else record.to_dict()
    omega = document.get("omega") or {}
    if not omega:
        raise CalibrationError(
            "the fit record has no Ω (not a population fit); give a population fit, or use the drug library's BSV"
        )
    return {
        n: (float(document["theta"][n]["estimate"]), float(np.sqrt(omega[n]["variance"])))
        for n in omega
        if n in document["theta"]
    }


def map_posterior(
    levels: pd.DataFrame,
    prior: Mapping[str, tuple[float, float]],
    *,
    route: str = "oral",
    fixed: Mapping[str, float] | None = None,
    error_cv: float = 0.2,
    error_sd: float = 0.0,
) -> Posterior:
    """MAP estimate of the patient's CL, V (and ka, oral) from their levels, and its Laplace posterior."""
    spec = get_model("oral_1cpt" if route == "oral" else "iv_1cpt")
    names = tuple(n for n in ("ka", "cl", "v") if n in spec.parameter_names)
    missing = [n for n in ("cl", "v") if n not in prior]
    if missing:
        raise CalibrationError(f"the prior has no {', '.join(missing)}; give typical values and BSV for cl and v")
    problem = NonmemProblem(levels, spec, names, dict(fixed or {}))
    if len(problem.ids) != 1:
        raise CalibrationError(
            f"the levels hold {len(problem.ids)} subjects (IDs {problem.ids}); give one patient's levels"
        )
    full_prior = {n: prior.get(n, (spec.parameter(n).default, 1.0)) for n in names}
    error = ErrorModel("comb" if error_sd > 0 else "prop")
    sigma = np.log([error_sd, error_cv] if error_sd > 0 else [error_cv])

    def predict(values: dict[str, float]) -> np.ndarray:
        return problem.predict(np.array([[values[n] for n in names]]))[problem.mask]

    individual = IndividualProblem(names, predict, problem.dv[problem.mask], error, prior=full_prior)

    def objective(x):
        return individual.objective(np.concatenate([x, sigma]))

    x0 = np.log([full_prior[n][0] for n in names])
    result = minimize(objective, x0, method="L-BFGS-B", jac="3-point", options={"ftol": 1e-12, "gtol": 1e-7})
    hessian = numerical_hessian(objective, result.x)
    try:
        cov = 2 * np.linalg.inv((hessian + hessian.T) / 2)
        np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise CalibrationError(
            "the posterior is not well defined at the MAP estimate; check the levels "
            "(units mg/L, times in h after the doses)"
        ) from None
    return Posterior(names, result.x, cov, dict(full_prior))


@dataclass
class Candidate:
    dose: float
    interval_h: float | None
    pta: float
    p_safe: float
    safe: bool
    median: float
    ci90: list[float]
    margin_p05: float | None = None

    def label(self, unit: str) -> str:
        return f"{self.dose:g} {unit}" + (f" q{self.interval_h:g}h" if self.interval_h else "")


@dataclass
class DosePlan:
    target: Window
    best: Candidate
    candidates: list[Candidate]
    posterior: dict
    n_samples: int
    unit: str  # of the dose
    metric_unit: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self) | {
            "target": {
                "metric": self.target.metric,
                "low": self.target.low,
                "high": self.target.high,
                "unit": self.metric_unit,
            }
        }


def _score(values: np.ndarray, safe_ok: np.ndarray, target: Window, dose, interval, margin=None) -> Candidate:
    p_safe = float(np.mean(safe_ok))
    return Candidate(
        float(dose),
        interval,
        float(np.mean((values >= target.low) & (values <= target.high))),
        p_safe,
        p_safe >= 1 - SAFE_QUANTILE,
        float(np.median(values)),
        [float(q) for q in np.quantile(values, [0.05, 0.95])],
        None if margin is None else float(np.quantile(margin, SAFE_QUANTILE)),
    )


def _choose(
    candidates: list[Candidate], target: Window, unit: str, dose_unit: str, min_pta: float, what: str
) -> Candidate:
    safe = [c for c in candidates if c.safe]
    if not safe:
        least = max(candidates, key=lambda c: c.p_safe)
        raise CalibrationError(
            f"no candidate is safe ({what} fails in more than {SAFE_QUANTILE:.0%} of the posterior "
            f"even at {least.label(dose_unit)}); allow smaller doses or longer intervals, or relax {what}"
        )

    def miss(c):  # how far (log scale) the median lies outside the window
        return max(np.log(target.low / c.median), np.log(c.median / target.high), 0.0) if c.median > 0 else np.inf

    centre = np.sqrt(target.low * target.high)  # ties: the median nearest the window's centre, then the least drug
    best = max(
        safe,
        key=lambda c: (
            round(c.pta, 3),
            -miss(c),
            -round(abs(np.log(c.median / centre)), 2) if c.median > 0 else -np.inf,
            -c.dose / (c.interval_h or 24.0),
        ),
    )
    if best.pta < min_pta:
        hint = (
            "allow larger doses or shorter intervals"
            if best.median < target.low
            else "allow smaller doses or longer intervals"
            if best.median > target.high
            else "measure more levels to narrow the posterior"
        )
        raise CalibrationError(
            f"no candidate reaches {target} {unit} with PTA ≥ {min_pta:g}; the best is "
            f"{best.pta:.0%} at {best.label(dose_unit)} (median {best.median:.3g}) — widen the window or {hint}"
        )
    return best


def optimise_regimen(
    posterior: Posterior,
    target: Window,
    doses_mg: Sequence[float],
    intervals_h: Sequence[float],
    *,
    pk: IndividualPK,
    route: str = "oral",
    ec50_mg_per_l: float | None = None,
    min_margin: float = 1.0,
    min_pta: float = 0.5,
    n_samples: int = 2000,
    seed: int = 0,
) -> DosePlan:
    """The regimen of the menu with the highest PTA under the posterior (module docstring)."""
    if target.metric not in PATIENT_METRICS:
        raise CalibrationError(f"a patient target is one of {', '.join(PATIENT_METRICS)}; got {target.metric!r}")
    if not doses_mg or not intervals_h or min(doses_mg) <= 0 or min(intervals_h) <= 0:
        raise CalibrationError("give positive dose strengths (mg) and intervals (h)")
    draws = posterior.sample(n_samples, np.random.default_rng(seed))
    sampled = IndividualPK(
        draws["cl"], draws["v"], draws.get("ka", np.ravel(pk.ka_per_h)[0]), np.ravel(pk.f_oral)[0], pk.fu_p
    )
    attribute, unit = PATIENT_METRICS[target.metric]
    candidates = []
    for interval in sorted(set(map(float, intervals_h))):
        for dose in sorted(set(map(float, doses_mg))):
            result = exposure(sampled, Regimen(dose, interval, 1, route))
            margin = None if ec50_mg_per_l is None else ec50_mg_per_l / (pk.fu_p * result.cmax_ss)
            ok = np.ones(n_samples, bool) if margin is None else margin >= min_margin
            candidates.append(_score(getattr(result, attribute), ok, target, dose, interval, margin))
    best = _choose(candidates, target, unit, "mg", min_pta, f"the toxicity margin ≥ {min_margin:g}")
    notes = [] if ec50_mg_per_l is not None else ["the drug has no chip EC50: no toxicity constraint applied"]
    return DosePlan(target, best, candidates, posterior.summary(), n_samples, "mg", unit, notes)


def chip_posterior(record) -> Posterior:
    """log θ ~ N(log estimate, SE and correlation of the fit record)."""
    document = record if isinstance(record, dict) else record.to_dict()
    names = tuple(document["theta"])
    mean = np.log([document["theta"][n]["estimate"] for n in names])
    sd = np.array(
        [
            np.log(t["ci95"][1] / t["ci95"][0]) / (2 * 1.959963984540054) if t.get("ci95") else 0.0
            for t in document["theta"].values()
        ]
    )
    corr = np.eye(len(names))
    matrix = (document.get("correlation") or {}).get("matrix")
    if matrix is not None:
        index = [document["correlation"]["names"].index(n) for n in names]
        corr = np.nan_to_num(np.asarray(matrix, float)[np.ix_(index, index)], nan=0.0)
        np.fill_diagonal(corr, 1.0)
    return Posterior(names, mean, np.outer(sd, sd) * corr + np.eye(len(names)) * 1e-12)


def optimise_chip_dose(
    record,
    target: Window,
    span_h: tuple[float, float] = (0.0, 24.0),
    *,
    viability_floor: float = 0.8,
    doses_um: Sequence[float] | None = None,
    constants: Mapping[str, float] | None = None,
    min_pta: float = 0.5,
    n_samples: int = 100,
    seed: int = 0,
) -> DosePlan:
    """The bolus (µM in the medium at the span's start) with the highest PTA (module docstring)."""
    if target.metric not in CHIP_METRICS:
        raise CalibrationError(f"a chip target is one of {', '.join(CHIP_METRICS)}; got {target.metric!r}")
    start, end = map(float, span_h)
    if not 0 <= start < end:
        raise CalibrationError(f"the span {start:g}:{end:g} h needs 0 ≤ START < END")
    document = record if isinstance(record, dict) else record.to_dict()
    posterior = chip_posterior(document)
    fixed = dict((document.get("data_selection") or {}).get("fixed") or {})
    constants = {**CHIP_CONSTANTS, **(constants or {})}
    times = np.linspace(start, end, 49)
    notes = [
        f"no standard error for {n}: held at its estimate" for n, t in document["theta"].items() if not t.get("ci95")
    ]

    def simulate(params: list[dict], doses: np.ndarray):
        runs = [
            ChipRun({**fixed, **p}, [Dose(start, d * constants["V_m0"], 0.0)], constants) for p, d in zip(params, doses)
        ]
        out = simulate_chips(runs, times, ["drug_medium", "viability"], model=document.get("model") or "liver_chip")
        conc = out["drug_medium"]
        metric = {
            "conc": np.trapezoid(conc, times, axis=1) / (end - start),
            "cmin": conc.min(axis=1),
            "cmax": conc.max(axis=1),
        }[target.metric]
        return metric, out["viability"][:, -1]

    grid = np.asarray(doses_um if doses_um is not None else np.geomspace(0.1, 1000.0, 41), dtype=float)
    typical = {n: float(np.exp(m)) for n, m in zip(posterior.names, posterior.mean)}
    point, _ = simulate([typical] * grid.size, grid)
    near = (point >= target.low / 2) & (point <= target.high * 2)
    chosen = (
        grid[near] if near.any() else grid[[int(np.argmin(np.abs(np.log(point / np.sqrt(target.low * target.high)))))]]
    )
    draws = posterior.sample(n_samples, np.random.default_rng(seed))
    params = [{n: float(draws[n][s]) for n in posterior.names} for s in range(n_samples)]
    metric, viability = simulate(params * chosen.size, np.repeat(chosen, n_samples))
    candidates = [
        _score(
            metric[k * n_samples : (k + 1) * n_samples],
            viability[k * n_samples : (k + 1) * n_samples] >= viability_floor,
            target,
            dose,
            None,
        )
        for k, dose in enumerate(chosen)
    ]
    best = _choose(candidates, target, "µM", "µM", min_pta, f"viability ≥ {viability_floor:g}")
    return DosePlan(target, best, candidates, posterior.summary(), n_samples, "µM", "µM", notes)
