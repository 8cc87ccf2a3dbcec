"""Repeated prediction of one dataset for new parameters (population fits): superposition.

``Superposition`` is built once from a prepared dataset, its resolved parameters and its
schedule (so the dosing parameters fN, alagN, rN, dN are fixed); ``predict(structural)``
then gives the observable for new structural parameters, one value per subject:

    fast = Superposition(data, spec, values, schedule, rows=observed_rows)
    f = fast.predict({"cl": cl, "v": v})  # shape of ``rows``

For a linear model with A = V·diag(λ)·V⁻¹ and observation c·x, a unit dose into compartment
j contributes Σ_m coef[j, m]·e^{λ_m τ} τ after it, coef[j, m] = (c·V)_m·(V⁻¹)_{m j}; an
infusion at rate r that ran for u hours and ended τ ago contributes r·Σ_m coef[j, m]·u·φ₁(λ_m u)·e^{λ_m τ};
a steady state set τ ago, its eigen-coordinates (the closed-form geometric sums of
``twin.pk.linear``) times e^{λ_m τ}. The terms — which source reaches which output, and
when — are worked out once (``twin.pk.terms``); each call evaluates them all with numpy and
sums them per output with ``np.bincount``. No Python loop runs over subjects or events.

The answers are the lockstep solver's (``twin.pk.linear``) to rounding. The one-compartment
models' eigen-decompositions are closed forms; the others use LAPACK as the lockstep does.
Subjects with nearly equal eigenvalues go to the integrator, as in ``predict_resolved``;
subjects the terms cannot express (see ``twin.pk.terms``), and non-linear models, go to
``predict_resolved`` itself.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping

import numpy as np
import pandas as pd

from twin.model import ModelSpec
from twin.pk.linear import MAX_CONDITION, phi1
from twin.pk.ode import simulate_subject
from twin.pk.params import ResolvedParameters
from twin.pk.schedule import Schedule
from twin.pk.simulate import FALLBACK, predict_resolved
from twin.pk.systems import observation_weights, rate_matrix
from twin.pk.terms import SteadyTerms, build_terms


class Superposition:
    """Predictions of one dataset at ``rows`` for new structural parameters, fast when repeated."""

    def __init__(self, data: pd.DataFrame, spec: ModelSpec, values: ResolvedParameters, schedule: Schedule, *,
                 observable: str = "cp", rows: np.ndarray | None = None) -> None:
        self.data, self.spec, self.values, self.schedule, self.observable = data, spec, values, schedule, observable
        rows = np.arange(len(data)) if rows is None else np.asarray(rows, dtype=np.int64)
        self._shape = rows.shape
        self._wanted, inverse = np.unique(rows, return_inverse=True)
        self._inverse = inverse.reshape(-1)
        everyone = np.arange(schedule.n_subjects)
        self.terms = build_terms(schedule, len(spec.states), self._wanted, len(data),
                                 None if spec.linear else everyone)
        fallback = self.terms.fallback
        self._fallback_schedule = _subset(schedule, fallback) if fallback.size else None
        self._fallback_outputs = np.isin(self.terms.output_subject, fallback)
        self._bounds = schedule.bounds()

    @property
    def fallback_subjects(self) -> np.ndarray:
        """Subjects (0-based) predicted by ``predict_resolved`` rather than by superposition."""
        return self.terms.fallback

    def predict(self, structural: Mapping[str, np.ndarray]) -> np.ndarray:
        """The observable at ``rows`` for these structural parameters (name -> per-subject array)."""
        structural = {name: np.asarray(value, dtype=float) for name, value in structural.items()}
        terms = self.terms
        weights = observation_weights(self.spec, self.observable, structural)
        out = np.zeros(terms.n_outputs)
        unsolved = np.zeros(self.schedule.n_subjects, dtype=bool)
        if self.spec.linear:
            lam, coef, unsolved, invalid = decompose(self.spec.name, structural, weights)
            unsolved[terms.fallback] = invalid[terms.fallback] = False
            unsolved &= ~invalid
            out = self._superpose(lam, coef)
            out[invalid[terms.output_subject]] = np.nan
        if self._fallback_schedule is not None:
            subset = {name: value[terms.fallback] for name, value in structural.items()}
            full = predict_resolved(self.data, self.spec, replace(self.values, structural=subset),
                                    self._fallback_schedule, observable=self.observable)
            out[self._fallback_outputs] = full[self._wanted[self._fallback_outputs]]
        if unsolved.any():
            full = np.full(len(self.data), np.nan)
            for s in np.flatnonzero(unsolved):
                p = {name: float(value[s]) for name, value in structural.items()}
                simulate_subject(self.spec, p, self.schedule, self._bounds[s], self._bounds[s + 1], weights[s], full,
                                 FALLBACK)
            mine = unsolved[terms.output_subject]
            out[mine] = full[self._wanted[mine]]
        return out[self._inverse].reshape(self._shape)

    def _superpose(self, lam: np.ndarray, coef: np.ndarray) -> np.ndarray:
        """Sum of all terms per output. Arrays are (eigenvalue, term): contiguous rows are fastest."""
        terms, n_outputs = self.terms, self.terms.n_outputs
        lam_t = np.ascontiguousarray(lam.T)  # (n, subjects)
        coef_t = np.ascontiguousarray(coef.reshape(-1, lam.shape[1]).T)  # (n, subject·n_inputs + cmt)
        out = np.zeros(n_outputs)
        for family, kind in ((terms.bolus, "bolus"), (terms.infusion, "infusion"), (terms.steady, "steady")):
            if not family.out.size:
                continue
            rates = np.take(lam_t, family.subject, axis=1)
            response = np.exp(rates * family.elapsed)
            if kind == "infusion":  # ran for `extra` hours, ended `elapsed` hours ago
                response *= family.extra * phi1(rates * family.extra)
            elif kind == "steady":  # the steady state of record `extra`, set `elapsed` hours ago
                response *= np.take(steady_states(terms.records, lam).T, family.extra, axis=1)
            response *= np.take(coef_t, family.source, axis=1)
            out += np.bincount(family.out, np.real(response.sum(axis=0)) * family.weight, minlength=n_outputs)
        return out


def steady_states(r: SteadyTerms, lam: np.ndarray) -> np.ndarray:
    """Eigen-coordinates per SS record of a unit input (``twin.pk.linear._steady_state`` batched)."""
    rates = lam[r.subject]
    constant = (r.interval == 0)[:, None]
    interval = np.where(constant, 1.0, r.interval[:, None])
    per_period = -np.expm1(rates * interval)  # 1 − e^{λ·II}
    duration = r.duration[:, None]
    since_last = np.where(constant, 0.0, r.ended[:, None] * interval - r.lag[:, None])  # k_ended·II − L
    bolus = r.amount[:, None] * np.exp(rates * since_last) / per_period
    infused = r.rate[:, None] * duration * phi1(rates * duration) * np.exp(rates * (since_last - duration)) / per_period
    state = np.where(constant, -r.rate[:, None] / rates, np.where(r.rate[:, None] > 0, infused, bolus))
    if r.running_record.size:
        elapsed = r.running_elapsed[:, None]
        running = r.rate[r.running_record][:, None] * elapsed * phi1(rates[r.running_record] * elapsed)
        np.add.at(state, r.running_record, running)
    return state


def decompose(name: str, p: Mapping[str, np.ndarray],
              weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Eigenvalues (subjects, n), coef (subjects, input compartment, n), and two masks of subjects:
    nearly defective (for the integrator), and not finite (e.g. CL/V overflowing: NaN predictions).

    Placeholders (λ = −1, coef = 0) stand for the subjects of either mask.
    """
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        if name == "iv_1cpt":
            lam, coef = -(p["cl"] / p["v"])[:, None], weights[:, None, :].copy()
            unsolved = np.zeros(len(lam), dtype=bool)
        elif name == "oral_1cpt":
            lam, coef, unsolved = _oral_1cpt(p["ka"], p["cl"] / p["v"], weights)
        else:
            lam, coef, unsolved = _lapack(rate_matrix(name, p), weights)
    invalid = ~(np.isfinite(lam).all(axis=1) & np.isfinite(coef).all(axis=(1, 2)))
    lam[invalid], coef[invalid] = -1.0, 0.0
    return lam, coef, unsolved | invalid, invalid


def _lapack(a: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """As ``twin.pk.linear.simulate_linear`` decomposes A."""
    finite = np.isfinite(a).all(axis=(1, 2)) & np.isfinite(weights).all(axis=1)
    a = np.where(finite[:, None, None], a, -np.eye(a.shape[-1]))
    lam, v = np.linalg.eig(a)
    if np.all(lam.imag == 0):
        lam, v = lam.real, v.real
    unsolved = ~(np.linalg.cond(v) < MAX_CONDITION)
    v[unsolved] = np.eye(v.shape[-1])
    lam[unsolved | ~finite] = np.nan  # not finite: reported by ``decompose``
    lam[unsolved & finite] = -1.0
    inputs = np.swapaxes(np.linalg.inv(v), 1, 2)  # inputs[s, j] = V⁻¹ e_j
    readout = np.einsum("sn,snm->sm", np.where(finite[:, None], weights, 0.0), v)  # c·V
    return lam, readout[:, None, :] * inputs, unsolved


def _oral_1cpt(ka: np.ndarray, k: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A = [[−ka, 0], [ka, −k]]: λ = (−ka, −k), V = [[k − ka, 0], [ka, 1]], V⁻¹ = [[1, 0], [−ka, k − ka]]/(k − ka).

    cond(V) with unit columns (as LAPACK returns them) is (1 + |cos θ|)/sin θ = (‖v₁‖ + ka)/|k − ka|,
    i.e. hypot(1, r) + r with r = ka/|k − ka|.
    """
    gap = k - ka
    ratio = ka / np.abs(gap)
    unsolved = ~(np.hypot(1.0, ratio) + ratio < MAX_CONDITION)  # no overflow for huge ka, k
    placeholder = unsolved & np.isfinite(ka) & np.isfinite(k) & np.isfinite(weights).all(axis=1)
    gap = np.where(unsolved, 1.0, gap)
    lam = np.where(placeholder[:, None], -1.0, np.stack([-ka, -k], axis=1))  # left not finite: reported
    depot, central = weights[:, 0], weights[:, 1]
    first = depot * gap + central * ka  # (c·V)₀
    coef = np.zeros((len(ka), 2, 2))
    coef[:, 0, 0] = first / gap
    coef[:, 0, 1] = -central * ka / gap
    coef[:, 1, 1] = central
    coef[placeholder] = 0.0
    return lam, coef, unsolved


def _subset(schedule: Schedule, subjects: np.ndarray) -> Schedule:
    """The actions of some subjects only, renumbered 0, 1, …"""
    keep = np.isin(schedule.subject, subjects)
    number = np.full(schedule.n_subjects, -1)
    number[subjects] = np.arange(len(subjects))
    return Schedule(len(subjects), number[schedule.subject[keep]], schedule.time_h[keep], schedule.kind[keep],
                    schedule.cmt[keep], schedule.value[keep], schedule.steady)
