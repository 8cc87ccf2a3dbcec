"""A patient twin that keeps learning: therapeutic drug monitoring, one level at a time.

The patient's levels (a NONMEM-style dataset: the doses given and the measured levels) are
taken in the order they were measured. Before any level the posterior is the prior (the drug
library's typical CL, V, ka for this patient with log-normal BSV, ``optimise.library_prior``);
after each level it is the MAP estimate and its Laplace approximation from the doses and the
levels so far (``optimise.map_posterior``, the machinery of ``chiptwin dose``). At every step:

- CL: the MAP estimate and its 95 % interval;
- the forecast: the concentration just before the next dose (the last dose of the file plus
  the dosing interval), median and 95 % band over the posterior — one fixed quantity, so the
  band's narrowing shows what the levels taught;
- the proposal (with a target): the regimen of the menu with the highest probability of
  target attainment (``optimise.optimise_regimen``) — the next dose to keep the target.

    learning = learn(levels, prior, pk, target=Window("ctrough", 0.05, 0.1), strengths_mg=[50, 100, 200])
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from calibration.dosing.optimise import PATIENT_METRICS, DosePlan, Posterior, Window, map_posterior, optimise_regimen
from calibration.errors import CalibrationError
from calibration.io.nonmem import NonmemProblem
from twin.catalogue import get_model
from twin.patients import IndividualPK


@dataclass(frozen=True)
class Band:
    """Median and central 95 % interval over the posterior (mg/L)."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: np.ndarray) -> Band:
        low, median, high = (float(q) for q in np.quantile(values, [0.025, 0.5, 0.975]))
        return cls(median, low, high)

    @property
    def width(self) -> float:
        return self.high - self.low


@dataclass(frozen=True)
class Regimen:
    """The patient's current regimen as the dataset shows it: the last dose and the interval."""

    dose_mg: float
    interval_h: float
    last_dose_h: float

    @property
    def next_dose_h(self) -> float:
        return self.last_dose_h + self.interval_h


@dataclass(frozen=True)
class LearningStep:
    """What the twin believes after ``n_levels`` levels (0: the prior alone)."""

    n_levels: int
    level_time_h: float | None
    level_mg_per_l: float | None
    cl_l_per_h: float
    cl_ci95: tuple[float, float]
    v_l: float
    next_trough_mg_per_l: Band
    proposal: str | None = None  # e.g. "150 mg q12h"
    proposal_pta: float | None = None
    proposal_median: float | None = None
    refusal: str | None = None  # why no regimen was proposed


@dataclass
class PatientLearning:
    drug: str
    route: str
    regimen: Regimen
    target: Window | None
    metric_unit: str | None
    steps: list[LearningStep]
    plan: DosePlan | None = None  # the proposal after every level
    notes: list[str] = field(default_factory=list)
    fixed: dict[str, float] = field(default_factory=dict)  # held at the library's value (oral F as f1)
    posteriors: list[Posterior] = field(default_factory=list, repr=False)  # one per step (not in to_dict)

    def to_dict(self) -> dict:
        document = asdict(self)
        document.pop("posteriors")
        document["plan"] = None if self.plan is None else self.plan.to_dict()
        document["regimen"]["next_dose_h"] = self.regimen.next_dose_h
        return document


def observations(levels: pd.DataFrame) -> pd.DataFrame:
    """The measured levels (EVID 0, MDV 0, a DV), in the order they were taken."""
    mdv = levels["MDV"] if "MDV" in levels else pd.Series(0, index=levels.index)
    dv = pd.to_numeric(levels["DV"], errors="coerce")
    observed = (levels["EVID"] == 0) & (mdv == 0) & dv.notna()
    return levels[observed].sort_values("TIME", kind="stable")


def current_regimen(levels: pd.DataFrame, interval_h: float | None = None) -> Regimen:
    """The last dose of the dataset (ADDL expanded) and the interval: ``interval_h``, else II, else
    the time between the last two doses."""
    if interval_h is not None and not (np.isfinite(interval_h) and interval_h > 0):
        raise CalibrationError(f"--interval {interval_h!r}: give the dosing interval in hours, a positive number")
    doses = levels[levels["EVID"].isin((1, 4)) & (pd.to_numeric(levels["AMT"], errors="coerce") > 0)]
    if doses.empty:
        raise CalibrationError("the levels file has no doses (EVID 1 rows with AMT in mg); add the doses given")
    doses = doses.sort_values("TIME", kind="stable")
    last = doses.iloc[-1]
    ii = float(last["II"]) if "II" in doses and pd.notna(last["II"]) else 0.0
    addl = int(last["ADDL"]) if "ADDL" in doses and pd.notna(last["ADDL"]) and ii > 0 else 0
    last_h = float(last["TIME"]) + addl * ii
    if interval_h is None:
        if ii > 0:
            interval_h = ii
        elif len(doses) >= 2:
            interval_h = float(last["TIME"]) - float(doses.iloc[-2]["TIME"])
    if interval_h is None or not interval_h > 0:
        raise CalibrationError("cannot tell the dosing interval from one dose; give --interval HOURS (or an II column)")
    return Regimen(float(last["AMT"]), float(interval_h), last_h)


def prior_posterior(prior: Mapping[str, tuple[float, float]], route: str) -> Posterior:
    """The prior as a posterior before any level: log θ ~ N(log median, log SD²)."""
    spec = get_model("oral_1cpt" if route == "oral" else "iv_1cpt")
    names = tuple(n for n in ("ka", "cl", "v") if n in spec.parameter_names)
    full = {n: prior.get(n, (spec.parameter(n).default, 1.0)) for n in names}
    mean = np.log([full[n][0] for n in names])
    return Posterior(names, mean, np.diag([full[n][1] ** 2 for n in names]), dict(full))


class Forecast:
    """Concentrations at chosen times after the dataset's doses, for many posterior draws at once
    (the doses replicated over as many subjects as draws; one closed-form superposition)."""

    def __init__(
        self, levels: pd.DataFrame, times_h: Sequence[float], n_draws: int, route: str, fixed: Mapping[str, float]
    ) -> None:
        spec = get_model("oral_1cpt" if route == "oral" else "iv_1cpt")
        self.names = tuple(n for n in ("ka", "cl", "v") if n in spec.parameter_names)
        doses = levels[levels["EVID"].isin((1, 4))].reset_index(drop=True)
        cmt = int(observations(levels)["CMT"].iloc[0]) if len(observations(levels)) else len(self.names) - 1
        rows = [doses] + [pd.DataFrame({"TIME": list(times_h), "AMT": 0.0, "EVID": 0, "MDV": 0, "CMT": cmt, "DV": 1.0})]
        one = pd.concat(rows, ignore_index=True).sort_values(["TIME", "EVID"], ascending=[True, False], kind="stable")
        one = one.drop(columns=[c for c in one.columns if c not in doses.columns and c not in ("DV", "MDV")])
        frame = pd.concat([one.assign(ID=k + 1) for k in range(n_draws)], ignore_index=True)
        self.problem = NonmemProblem(frame, spec, self.names, dict(fixed))
        self.n_draws, self.n_times = n_draws, len(times_h)

    def predict(self, posterior: Posterior, rng: np.random.Generator) -> np.ndarray:
        """(n_draws, n_times) concentrations (mg/L), one posterior draw per row."""
        draws = posterior.sample(self.n_draws, rng)
        phi = np.column_stack([draws[n] for n in self.names])
        return np.asarray(self.problem.predict(phi))[:, : self.n_times]


def forecast_band(
    levels: pd.DataFrame,
    posterior: Posterior,
    times_h: Sequence[float],
    *,
    route: str,
    fixed: Mapping[str, float],
    n_draws: int = 300,
    seed: int = 0,
) -> pd.DataFrame:
    """The concentration over ``times_h`` (median and 95 % band, mg/L) under one step's posterior."""
    values = Forecast(levels, times_h, n_draws, route, fixed).predict(posterior, np.random.default_rng(seed))
    low, median, high = np.quantile(values, [0.025, 0.5, 0.975], axis=0)
    return pd.DataFrame({"time_h": list(times_h), "median": median, "low": low, "high": high})


def learn(
    levels: pd.DataFrame,
    prior: Mapping[str, tuple[float, float]],
    pk: IndividualPK,
    *,
    drug: str = "",
    route: str = "oral",
    target: Window | None = None,
    strengths_mg: Sequence[float] = (25, 50, 100, 200),
    intervals_h: Sequence[float] | None = None,
    interval_h: float | None = None,
    ec50_mg_per_l: float | None = None,
    error_cv: float = 0.2,
    n_samples: int = 1000,
    seed: int = 0,
) -> PatientLearning:
    """The posterior, forecast and proposal after each level in turn (module docstring)."""
    if target is not None and target.metric not in PATIENT_METRICS:
        raise CalibrationError(f"a patient target is one of {', '.join(PATIENT_METRICS)}; got {target.metric!r}")
    if not 10 <= n_samples <= 100_000:
        raise CalibrationError(f"--samples {n_samples}: give between 10 and 100,000 posterior draws")
    ids = pd.unique(levels["ID"])
    if len(ids) != 1:
        shown = ", ".join(f"{i:g}" if isinstance(i, float) else str(i) for i in ids[:5])
        raise CalibrationError(
            f"the levels hold {len(ids)} patients (IDs {shown}); give one patient's doses and levels"
        )
    regimen = current_regimen(levels, interval_h)
    observed = observations(levels)
    if observed.empty:
        raise CalibrationError("the levels file has no measured levels (EVID 0 rows with a DV in mg/L)")
    negative = observed[pd.to_numeric(observed["DV"]) < 0]
    if not negative.empty:
        where = f"line {negative.index[0]}" if negative.index.name == "line" else f"TIME {negative['TIME'].iloc[0]:g}"
        raise CalibrationError(f"{where}: a level of {negative['DV'].iloc[0]:g} mg/L; a concentration is not negative")
    fixed = {"f1": float(np.ravel(pk.f_oral)[0])} if route == "oral" else {}
    forecast = Forecast(levels, [regimen.next_dose_h - 1e-9], n_samples, route, fixed)
    doses = levels[~levels.index.isin(observed.index) & (levels["EVID"] != 0)]
    steps, posteriors = [], []
    plan = None
    for k in range(len(observed) + 1):
        if k == 0:
            posterior = prior_posterior(prior, route)
        else:
            data = pd.concat([doses, observed.iloc[:k]]).sort_values(
                ["TIME", "EVID"], ascending=[True, False], kind="stable"
            )
            posterior = map_posterior(data, prior, route=route, fixed=fixed, error_cv=error_cv)
        posteriors.append(posterior)
        trough = forecast.predict(posterior, np.random.default_rng(seed))[:, 0]
        summary = posterior.summary()["cl"]
        step = dict(
            n_levels=k,
            level_time_h=None if k == 0 else float(observed["TIME"].iloc[k - 1]),
            level_mg_per_l=None if k == 0 else float(observed["DV"].iloc[k - 1]),
            cl_l_per_h=summary["estimate"],
            cl_ci95=tuple(summary["ci95"]),
            v_l=posterior.summary()["v"]["estimate"],
            next_trough_mg_per_l=Band.of(trough),
        )
        if target is not None:
            try:
                plan = optimise_regimen(
                    posterior,
                    target,
                    strengths_mg,
                    intervals_h or [regimen.interval_h],
                    pk=pk,
                    route=route,
                    ec50_mg_per_l=ec50_mg_per_l,
                    n_samples=n_samples,
                    seed=seed,
                )
                best = plan.best
                step.update(proposal=best.label("mg"), proposal_pta=best.pta, proposal_median=best.median)
            except CalibrationError as exc:
                plan = None
                step.update(refusal=str(exc))
        steps.append(LearningStep(**step))  # type: ignore[arg-type]
    notes = [
        f"residual error fixed at {error_cv:.0%} (proportional)",
        f"next trough: just before the dose due at {regimen.next_dose_h:g} h ({regimen.dose_mg:g} mg q{regimen.interval_h:g}h)",
    ]
    unit = PATIENT_METRICS[target.metric][1] if target is not None else None
    return PatientLearning(drug, route, regimen, target, unit, steps, plan, notes, fixed, posteriors)


__all__ = [
    "Band",
    "Forecast",
    "forecast_band",
    "LearningStep",
    "PatientLearning",
    "Regimen",
    "current_regimen",
    "learn",
]
