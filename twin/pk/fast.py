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

    def __init__(
        self,
        data: pd.DataFrame,
        spec: ModelSpec,
        values: ResolvedParameters,
        schedule: Schedule,
        *,
        observable: str = "cp",
        rows: np.ndarray | None = None,
    ) -> None:
        self.data, self.spec, self.values, self.schedule, self.observable = data, spec, values, schedule, observable
        rows = np.arange(len(data)) if rows is None else np.asarray(rows, dtype=np.int64)
        self._shape = rows.shape
        self._wanted, inverse = np.unique(rows, return_inverse=True)
        self._inverse = inverse.reshape(-1)
        everyone = np.arange(schedule.n_subjects)
        self.terms = build_terms(schedule, len(spec.states), self._wanted, len(data), None if spec.linear else everyone)
        fallback = self.terms.fallback
        self._fallback_schedule = _subset(schedule, fallback) if fallback.size else None
        self._fallback_outputs = np.isin(self.terms.output_subject, fallback)
        self._bounds = schedule.bounds()
        self._shift_cache: dict[tuple[int, float], tuple[np.ndarray, np.ndarray]] = {}

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
            full = predict_resolved(
                self.data,
                self.spec,
                replace(self.values, structural=subset),
                self._fallback_schedule,
                observable=self.observable,
            )
            out[self._fallback_outputs] = full[self._wanted[self._fallback_outputs]]
        if unsolved.any():
            full = np.full(len(self.data), np.nan)
            for s in np.flatnonzero(unsolved):
                p = {name: float(value[s]) for name, value in structural.items()}
                simulate_subject(
                    self.spec, p, self.schedule, self._bounds[s], self._bounds[s + 1], weights[s], full, FALLBACK
                )
            mine = unsolved[terms.output_subject]
            out[mine] = full[self._wanted[mine]]
        return out[self._inverse].reshape(self._shape)

    def predict_derivatives(
        self, structural: Mapping[str, np.ndarray], names: tuple[str, ...], step: float = 1e-4
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The observable at ``rows``, and its first and second derivatives in ψ = log p for the
        structural parameters ``names``: shapes ``rows.shape``, (…, r) and (…, r, r).

        In closed form for the one-compartment models (fixed eigenvalue order): each term is
        R(λ)·coef, with ∂R/∂λ and ∂²R/∂λ² exact (bolus: τ·R, τ²·R; infusion: moments of e^{λs}
        over the infusion; steady state: differences of the per-record geometric sums, a handful
        of numbers per record); λ and coef, a few numbers per subject, are differenced in ψ.
        ``None`` where that does not apply (other models, fallback or nearly defective subjects,
        parameters not finite): differentiate ``predict`` instead.
        """
        if self.spec.name not in ("iv_1cpt", "oral_1cpt") or self._fallback_schedule is not None:
            return None
        n, r = self.schedule.n_subjects, len(names)
        shifts, factors = self._shifts(r, step)
        batch = {
            name: np.tile(np.broadcast_to(np.asarray(value, dtype=float), (n,)), len(shifts))
            for name, value in structural.items()
        }
        for k, name in enumerate(names):
            batch[name] = batch[name] * factors[:, k]
        lam, coef, unsolved, invalid = decompose(
            self.spec.name, batch, observation_weights(self.spec, self.observable, batch)
        )
        if unsolved.any() or invalid.any():
            return None
        lam, coef = lam.reshape(len(shifts), n, *lam.shape[1:]), coef.reshape(len(shifts), n, *coef.shape[1:])
        lam0, coef0 = lam[0], coef[0]
        dlam, dcoef = np.zeros((r, *lam0.shape)), np.zeros((r, *coef0.shape))
        d2lam, d2coef = np.zeros((r, r, *lam0.shape)), np.zeros((r, r, *coef0.shape))
        for a in range(r):
            up, down = 1 + 2 * a, 2 + 2 * a
            dlam[a], dcoef[a] = (lam[up] - lam[down]) / (2 * step), (coef[up] - coef[down]) / (2 * step)
            d2lam[a, a] = (lam[up] - 2 * lam0 + lam[down]) / step**2
            d2coef[a, a] = (coef[up] - 2 * coef0 + coef[down]) / step**2
        i = 1 + 2 * r
        for a in range(r):
            for b in range(a):
                d2lam[a, b] = d2lam[b, a] = (lam[i] - lam[i + 1] - lam[i + 2] + lam[i + 3]) / (4 * step**2)
                d2coef[a, b] = d2coef[b, a] = (coef[i] - coef[i + 1] - coef[i + 2] + coef[i + 3]) / (4 * step**2)
                i += 4
        f, d1, d2 = self._superpose_derivatives(lam0, coef0, dlam, dcoef, d2lam, d2coef)
        shape = self._shape
        return (
            f[self._inverse].reshape(shape),
            d1[self._inverse].reshape(*shape, r),
            d2[self._inverse].reshape(*shape, r, r),
        )

    def _shifts(self, r: int, step: float) -> tuple[np.ndarray, np.ndarray]:
        """The shifted parameter sets in ψ, all in one batch: centre, ±a, then (±a, ±b) for b < a;
        and their factors e^shift per (set, subject) row. Cached: the same for every call."""
        key = (r, step)
        if key not in self._shift_cache:
            eye = np.eye(r)
            shifts = [np.zeros(r)]
            for a in range(r):
                shifts += [step * eye[a], -step * eye[a]]
            for a in range(r):
                for b in range(a):
                    shifts += [step * (sa * eye[a] + sb * eye[b]) for sa, sb in ((1, 1), (1, -1), (-1, 1), (-1, -1))]
            array = np.array(shifts)
            self._shift_cache[key] = (array, np.exp(np.repeat(array, self.schedule.n_subjects, axis=0)))
        return self._shift_cache[key]

    def _superpose_derivatives(self, lam, coef, dlam, dcoef, d2lam, d2coef):
        """``_superpose`` with ∂/∂ψ and ∂²/∂ψ², for real eigenvalues.

        f_o = Σ_{m,j} R_{m,o,j}·coef[s(o), j, m], with R_{m,o,j} the sum over the terms of output o
        from input compartment j of each term's R_m(λ_m)·weight; R's λ-derivatives are summed the
        same way, and the parameters' derivatives (per subject, through λ and coef) applied per output.
        """
        terms, n_outputs = self.terms, self.terms.n_outputs
        n_eig, n_inputs = lam.shape[1], coef.shape[1]
        sums = np.zeros((3, n_eig, n_outputs * n_inputs))  # R, ∂R/∂λ, ∂²R/∂λ² per (m, output, input)
        steady = None
        lam_t = np.ascontiguousarray(lam.T)
        for family, kind in ((terms.bolus, "bolus"), (terms.infusion, "infusion"), (terms.steady, "steady")):
            if not family.out.size:
                continue
            rates = np.take(lam_t, family.subject, axis=1)
            tau = family.elapsed
            base = np.exp(rates * tau) * family.weight
            if kind == "bolus":
                parts = (base, tau * base, tau**2 * base)
            else:
                if kind == "infusion":  # ∫₀ᵘ sᵏ e^{λs} ds, u = duration so far
                    x0, x1, x2 = _infusion_moments(rates, family.extra)
                else:
                    if steady is None:
                        steady = _steady_derivatives(terms.records, lam)
                    x0, x1, x2 = (np.take(v.T, family.extra, axis=1) for v in steady)
                parts = (base * x0, base * (tau * x0 + x1), base * (tau**2 * x0 + 2 * tau * x1 + x2))
            key = family.out * n_inputs + (family.source - family.subject * n_inputs)
            for k, part in enumerate(parts):
                for m in range(n_eig):
                    sums[k, m] += np.bincount(key, part[m], minlength=n_outputs * n_inputs)
        r0, r1, r2 = (x.reshape(n_eig, n_outputs, n_inputs) for x in sums)  # (m, o, j)
        subject = terms.output_subject
        r = dlam.shape[0]
        f, d1, d2 = np.zeros(n_outputs), np.zeros((n_outputs, r)), np.zeros((n_outputs, r, r))
        for m in range(n_eig):
            la = np.ascontiguousarray(dlam[:, subject, m].T)  # (o, a)
            lab = np.ascontiguousarray(d2lam[:, :, subject, m].transpose(2, 0, 1))  # (o, a, b)
            lala = la[:, :, None] * la[:, None, :]
            for j in range(n_inputs):
                if not (r0[m, :, j].any() or r1[m, :, j].any()):
                    continue
                c = coef[subject, j, m]
                ca = np.ascontiguousarray(dcoef[:, subject, j, m].T)
                cab = np.ascontiguousarray(d2coef[:, :, subject, j, m].transpose(2, 0, 1))
                s0, s1, s2 = r0[m, :, j], r1[m, :, j], r2[m, :, j]
                f += s0 * c
                d1 += (s1 * c)[:, None] * la + s0[:, None] * ca
                cross = la[:, :, None] * ca[:, None, :]
                d2 += (
                    (s2 * c)[:, None, None] * lala
                    + (s1 * c)[:, None, None] * lab
                    + s1[:, None, None] * (cross + cross.transpose(0, 2, 1))
                    + s0[:, None, None] * cab
                )
        return f, d1, d2

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


def _infusion_moments(lam: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """∫₀ᵘ sᵏ e^{λs} ds for k = 0, 1, 2 (the infusion's λ-derivatives), series near λu = 0."""
    z = lam * u
    small = np.abs(z) < 1e-3
    safe = np.where(small, 1.0, lam)
    e = np.exp(z)
    x0 = u * phi1(z)
    x1 = np.where(small, u**2 * (0.5 + z / 3 + z**2 / 8), (u * e - x0) / safe)
    x2 = np.where(small, u**3 * (1 / 3 + z / 4 + z**2 / 10), (u**2 * e - 2 * x1) / safe)
    return x0, x1, x2


def _steady_derivatives(r: SteadyTerms, lam: np.ndarray, step: float = 1e-4) -> tuple[np.ndarray, ...]:
    """``steady_states`` and its first and second λ-derivatives (per record; differences of closed forms)."""
    h = step * np.maximum(np.abs(lam), 1e-12)
    up, mid, down = steady_states(r, lam + h), steady_states(r, lam), steady_states(r, lam - h)
    hs = h[r.subject]
    return mid, (up - down) / (2 * hs), (up - 2 * mid + down) / hs**2


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


def decompose(
    name: str, p: Mapping[str, np.ndarray], weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
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
    return Schedule(
        len(subjects),
        number[schedule.subject[keep]],
        schedule.time_h[keep],
        schedule.kind[keep],
        schedule.cmt[keep],
        schedule.value[keep],
        schedule.steady,
    )
