"""NONMEM-style datasets as fitting problems: observations, and a batched predictor.

The dosing schedule, and the superposition terms of the observed rows
(``twin.pk.fast.Superposition``), are built once; each prediction replaces the subjects'
structural parameters and evaluates the twin's exact solution for all subjects at once.
Observation rows are EVID 0 with MDV 0 and a DV (optionally of one DVID).
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from calibration.errors import CalibrationError, NoObservationsError
from calibration.estimate.error_models import ErrorModel, Residuals
from calibration.estimate.population import PopulationData
from twin.catalogue import get_model
from twin.dataset import check_dataset_for_model, prepare_dataset, subject_index
from twin.model import ModelSpec
from twin.pk.fast import Superposition
from twin.pk.params import ParamValue, resolve_parameters
from twin.pk.schedule import build_schedule


class NonmemProblem:
    """One dataset + one catalogue model: ``predict(φ) -> (n_subjects, n_obs_max)``."""

    def __init__(
        self,
        data: pd.DataFrame,
        model: str | ModelSpec,
        phi_names: Sequence[str],
        fixed: Mapping[str, ParamValue] | None = None,
        *,
        observable: str = "cp",
        scale: float = 1.0,
        dvid: str | None = None,
    ) -> None:
        self.spec = model if isinstance(model, ModelSpec) else get_model(model)
        self.data = data if data.index.name in ("line", "row") and "EVID" in data else prepare_dataset(data)
        check_dataset_for_model(self.data, self.spec)
        unknown = [name for name in phi_names if name not in self.spec.parameter_names]
        if unknown:
            raise CalibrationError(
                f"model {self.spec.name!r} has no parameter {', '.join(unknown)}; "
                f"its parameters are {', '.join(self.spec.parameter_names)}"
            )
        self.phi_names, self.observable, self.scale = tuple(phi_names), observable, float(scale)
        self.values = resolve_parameters(self.data, self.spec, fixed or {})
        self.schedule = build_schedule(self.data, self.values)
        self._index_observations(dvid)
        # built once: the superposition terms of the observed rows (twin.pk.fast)
        self.predictor = Superposition(
            self.data, self.spec, self.values, self.schedule, observable=observable, rows=self.rows
        )

    def closed_form_derivatives(self) -> Callable | None:
        """∂prediction/∂φ in closed form for a linear model predicted by this class's own ``predict``
        (twin.pk.fast); None for a non-linear model or a subclass that predicts otherwise."""
        if type(self).predict is not NonmemProblem.predict or not self.spec.linear:
            return None

        def derivatives(phi: np.ndarray):
            structural = dict(self.values.structural)
            for k, name in enumerate(self.phi_names):
                structural[name] = np.asarray(phi[:, k], dtype=float)
            found = self.predictor.predict_derivatives(structural, self.phi_names)
            return None if found is None else tuple(self.scale * part for part in found)

        return derivatives

    def _index_observations(self, dvid: str | None) -> None:
        data = self.data
        observed = (data["EVID"].to_numpy() == 0) & (data["MDV"].to_numpy() == 0) & data["DV"].notna().to_numpy()
        if dvid is not None and "DVID" in data:
            observed &= data["DVID"].astype(str).to_numpy() == str(dvid)
        if not observed.any():
            raise NoObservationsError("the dataset has no observation rows (EVID 0, MDV 0, with a DV) to fit")
        subjects = subject_index(data)
        self.ids = list(pd.unique(data["ID"]))
        n_subjects = len(self.ids)
        rows = np.flatnonzero(observed)
        counts = np.bincount(subjects[rows], minlength=n_subjects)
        width = int(counts.max())
        self.rows = np.zeros((n_subjects, width), dtype=int)
        self.mask = np.zeros((n_subjects, width), dtype=bool)
        for s in range(n_subjects):
            mine = rows[subjects[rows] == s]
            self.rows[s, : mine.size], self.mask[s, : mine.size] = mine, True
        dv = data["DV"].to_numpy(dtype=float)
        self.dv = np.where(self.mask, dv[self.rows], 0.0)

    def population_data(self) -> PopulationData:
        return PopulationData(self.ids, self.dv, self.mask)

    def predict(self, phi: np.ndarray) -> np.ndarray:
        structural = dict(self.values.structural)
        for k, name in enumerate(self.phi_names):
            structural[name] = np.asarray(phi[:, k], dtype=float)
        return self.scale * self.predictor.predict(structural)


class MultiEndpointProblem(NonmemProblem):
    """Several endpoints in one dataset: each observation row predicts the observable its DVID names.

    ``observables`` maps DVID values to model observables (default: the DVID is the
    observable's name, e.g. warfarin's ``cp`` and ``pca``); ``groups`` (shaped like ``dv``)
    holds each observation's DVID, for one error model per endpoint (``residuals``).
    ``warfarin_pkpd`` with plain depot boluses takes a fast path (``_WarfarinPredictor``);
    any other model is predicted observable by observable with ``Superposition``.
    """

    def __init__(
        self,
        data: pd.DataFrame,
        model: str | ModelSpec,
        phi_names: Sequence[str],
        fixed: Mapping[str, ParamValue] | None = None,
        *,
        observables: Mapping[str, str] | None = None,
    ) -> None:
        self.spec = model if isinstance(model, ModelSpec) else get_model(model)
        self.data = data if data.index.name in ("line", "row") and "EVID" in data else prepare_dataset(data)
        check_dataset_for_model(self.data, self.spec)
        self.phi_names, self.scale = tuple(phi_names), 1.0
        self.values = resolve_parameters(self.data, self.spec, fixed or {})
        self.schedule = build_schedule(self.data, self.values)
        self._index_observations(None)
        column = next((c for c in self.data.columns if str(c).upper() == "DVID"), None)
        if column is None:
            raise CalibrationError("a multiple-endpoint fit needs a DVID column naming each observation's endpoint")
        dvid = self.data[column].astype(str).to_numpy()
        self.groups = np.where(self.mask, dvid[self.rows], dvid[self.rows[0, 0]]).astype(object)
        names = sorted(set(self.groups[self.mask]))
        self.observables = {d: (observables or {}).get(d, d) for d in names}
        known = {o.name for o in self.spec.observables}
        stray = sorted({o for o in self.observables.values() if o not in known})
        if stray:
            raise CalibrationError(
                f"DVID {', '.join(stray)} is not an observable of {self.spec.name!r} "
                f"({', '.join(sorted(known))}); map it with observables={{dvid: observable}}"
            )
        self.fast = _WarfarinPredictor.build(self) if self.spec.name == "warfarin_pkpd" else None
        self.predictors = (
            {}
            if self.fast
            else {
                d: Superposition(self.data, self.spec, self.values, self.schedule, observable=o, rows=self.rows)
                for d, o in self.observables.items()
            }
        )

    def residuals(self, errors: Mapping[str, ErrorModel]) -> Residuals:
        missing = [d for d in self.observables if d not in errors]
        if missing:
            raise CalibrationError(f"no error model for endpoint(s) {', '.join(missing)}")
        return Residuals(self.groups, {d: errors[d] for d in self.observables})

    def predict(self, phi: np.ndarray) -> np.ndarray:
        structural = dict(self.values.structural)
        for k, name in enumerate(self.phi_names):
            structural[name] = np.asarray(phi[:, k], dtype=float)
        if self.fast is not None:
            return self.fast.predict(structural, self.observables)
        out = np.zeros(self.rows.shape)
        for d, predictor in self.predictors.items():
            out = np.where(self.groups == d, predictor.predict(structural), out)
        return out


class _WarfarinPredictor:
    """warfarin_pkpd for depot boluses: cp in closed form (three exponentials per dose), and
    PCA from D = e0 − E, D' = kin·I(t) − kout·D, I = emax·C/(ec50 + C), integrated exactly
    for I linear between points of a ``STEP_H`` grid (a first-order-hold exponential
    integrator; checked against the twin's integrator in the tests to < 0.05 % of e0)."""

    STEP_H = 0.25

    def __init__(self, dose_t, dose_amt, obs_t, start, groups):
        self.dose_t, self.dose_amt, self.obs_t, self.groups = dose_t, dose_amt, obs_t, groups
        n_steps = int(np.ceil((obs_t.max() - start) / self.STEP_H)) + 1
        self.grid = start + self.STEP_H * np.arange(n_steps + 1)
        self.below = np.clip(np.floor((obs_t - start) / self.STEP_H).astype(int), 0, n_steps)

    @classmethod
    def build(cls, problem: NonmemProblem) -> "_WarfarinPredictor | None":
        data, values = problem.data, problem.values
        dose = data["EVID"].to_numpy() == 1
        plain = (data["CMT"].to_numpy()[dose] == 1).all() and not data[["RATE", "SS", "ADDL"]].to_numpy()[dose].any()
        if not plain or (data["EVID"].to_numpy() >= 3).any() or np.any(values.alag_h[dose] != 0):
            return None
        subjects = subject_index(data)
        n = len(problem.ids)
        width = max(int(np.bincount(subjects[dose], minlength=n).max()), 1)
        dose_t, dose_amt = np.zeros((n, width)), np.zeros((n, width))
        time, amount = data["TIME"].to_numpy(float), data["AMT"].to_numpy(float) * values.f
        for s in range(n):
            mine = np.flatnonzero(dose & (subjects == s))
            dose_t[s, : mine.size], dose_amt[s, : mine.size] = time[mine], amount[mine]
        obs_t = np.where(problem.mask, time[problem.rows], time[problem.rows].min())
        return cls(dose_t, dose_amt, obs_t, min(float(time.min()), 0.0), problem.groups)

    def _cp(self, p, t):
        """Plasma concentration at times t (n, m) by superposing the doses."""
        a, b, c = (np.asarray(x, float)[:, None, None] for x in (p["ktr"], p["ka"], p["cl"] / p["v"]))
        b = np.where(np.abs(b - a) < 1e-5 * a, a * (1 + 1e-5), b)
        c = np.where(np.abs(c - a) < 1e-5 * a, a * (1 - 1e-5), c)
        c = np.where(np.abs(c - b) < 1e-5 * b, b * (1 - 2e-5), c)
        tau = t[:, None, :] - self.dose_t[:, :, None]  # (subjects, doses, times)
        after = tau >= 0
        tau = np.where(after, tau, 0.0)
        shape = (
            np.exp(-a * tau) / ((b - a) * (c - a))
            + np.exp(-b * tau) / ((a - b) * (c - b))
            + np.exp(-c * tau) / ((a - c) * (b - c))
        )
        amount = (self.dose_amt[:, :, None] * a * b * shape * after).sum(axis=1)
        return amount / np.asarray(p["v"], float)[:, None]

    @staticmethod
    def _weights(k, h):
        """∫₀ʰ e^(−k(h−u)) du and ∫₀ʰ (u/h)·e^(−k(h−u)) du."""
        w0 = -np.expm1(-k * h) / k
        small = k * h <= 1e-6
        return w0, np.where(small, h / 2, (1 - w0 / np.where(small, 1.0, h)) / k)

    def predict(self, p, observables: Mapping[str, str]) -> np.ndarray:
        cp_obs = self._cp(p, self.obs_t)
        if "pca" not in observables.values():
            return cp_obs
        emax, ec50, kout, e0 = (np.asarray(p[n], float)[:, None] for n in ("emax", "ec50", "kout", "e0"))
        kin = e0 * kout

        def inhibition(c):
            return emax * c / (ec50 + c)

        i_grid = inhibition(self._cp(p, self.grid[None, :]))
        w0, w1 = self._weights(kout, self.STEP_H)
        increments = kin * (i_grid[:, :-1] * w0 + (i_grid[:, 1:] - i_grid[:, :-1]) * w1)
        d_grid = _decay_sum(increments, kout * self.STEP_H)
        delta = self.obs_t - self.grid[self.below]
        w0, w1 = self._weights(kout, delta)
        i_below = np.take_along_axis(i_grid, self.below, axis=1)
        d_obs = np.take_along_axis(d_grid, self.below, axis=1) * np.exp(-kout * delta) + kin * (
            i_below * w0 + (inhibition(cp_obs) - i_below) * w1
        )
        pca = e0 - d_obs
        out = np.zeros_like(cp_obs)
        for d, name in observables.items():
            out = np.where(self.groups == d, cp_obs if name == "cp" else pca, out)
        return out


def _decay_sum(increments: np.ndarray, rate_step: np.ndarray) -> np.ndarray:
    """D₀ = 0, D_{n+1} = e^(−rate_step)·D_n + increments_n, per row, by blocks of scaled cumsums."""
    n, m = increments.shape
    out = np.zeros((n, m + 1))
    block = max(1, int(30.0 / max(float(rate_step.max()), 1e-12)))
    for start in range(0, m, block):
        part = increments[:, start : start + block]
        j = np.arange(part.shape[1])[None, :]
        summed = np.cumsum(part * np.exp(rate_step * j), axis=1) * np.exp(-rate_step * j)
        out[:, start + 1 : start + 1 + part.shape[1]] = summed + out[:, start : start + 1] * np.exp(
            -rate_step * (j + 1)
        )
    return out
