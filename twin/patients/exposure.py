"""Exposure of a one-compartment model to a regimen, in closed form, vectorised over patients.

This is the population hot path, so it does not call the general PK solver (twin.pk):
it uses the analytic solution of ``iv_1cpt``/``oral_1cpt`` (MODELS.md §1) and superposes
n equal doses with geometric sums. With k = CL/V, after the last of n doses (t' ≥ 0):

    iv:    C(t') = D/V · R_k · e^(−k t')
    oral:  C(t') = F·D·ka/(V(ka − k)) · (R_k·e^(−k t') − R_ka·e^(−ka t'))
    R_x  = (1 − e^(−n x τ)) / (1 − e^(−x τ))      (n = ∞ gives steady state)

Cmax is at t'max = ln(ka·R_ka / (k·R_k)) / (ka − k) (0 for iv); Ctrough is C(τ) — what a
sample just before the next dose would show. AUC over a steady-state interval is F·D/CL;
AUC from the first dose to τ after the last is F·D/CL·(n − (ka·S_k − k·S_ka)/(ka − k)),
S_x = Σ_{m=1..n} e^(−x m τ) (iv: n − S_k). Where ka and k agree to 1e-8 (relative), ka is
nudged by 1e-8: the closed form stays finite and its error stays ~1e-8.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.patients.clearance import IndividualPK
from twin.patients.regimen import Regimen

_NUDGE = 1e-8


@dataclass(frozen=True)
class Exposure:
    """Per-patient exposure (mg/L, mg·h/L); `_ss` at steady state, others after the n doses."""

    auc_tau_ss: np.ndarray
    auc_0_end: np.ndarray  # first dose to τ after the last dose
    cmax: np.ndarray
    ctrough: np.ndarray
    cmax_ss: np.ndarray
    ctrough_ss: np.ndarray
    cmax_unbound: np.ndarray


def _accumulation(rate, tau_h, n):
    """R = (1 − e^(−n·rate·τ)) / (1 − e^(−rate·τ)), exact for n = ∞ too."""
    return np.expm1(-n * rate * tau_h) / np.expm1(-rate * tau_h)


def _rates(pk: IndividualPK, regimen: Regimen):
    k = np.asarray(pk.cl_l_per_h / pk.v_l, dtype=float)
    if regimen.route == "iv":
        return k, None
    ka = np.asarray(pk.ka_per_h, dtype=float)
    close = np.abs(ka - k) <= _NUDGE * k
    return k, np.where(close, k * (1.0 + _NUDGE), ka)


def _after_last_dose(pk: IndividualPK, regimen: Regimen, n, t_after_h):
    """Concentration at t' after the last of n doses (n may be an array or ∞)."""
    k, ka = _rates(pk, regimen)
    tau = regimen.interval_h
    if ka is None:
        return regimen.dose_mg / pk.v_l * _accumulation(k, tau, n) * np.exp(-k * t_after_h)
    scale = pk.f_oral * regimen.dose_mg * ka / (pk.v_l * (ka - k))
    return scale * (
        _accumulation(k, tau, n) * np.exp(-k * t_after_h) - _accumulation(ka, tau, n) * np.exp(-ka * t_after_h)
    )


def _peak_time_h(pk: IndividualPK, regimen: Regimen, n):
    k, ka = _rates(pk, regimen)
    if ka is None:
        return np.zeros_like(k)
    tau = regimen.interval_h
    ratio = ka * _accumulation(ka, tau, n) / (k * _accumulation(k, tau, n))
    return np.maximum(np.log(ratio) / (ka - k), 0.0)


def _auc_0_end(pk: IndividualPK, regimen: Regimen):
    k, ka = _rates(pk, regimen)
    n, tau = regimen.n_doses, regimen.interval_h

    def tail(rate):  # Σ_{m=1..n} e^(−rate·m·τ)
        return np.exp(-rate * tau) * _accumulation(rate, tau, n)

    if ka is None:
        return regimen.dose_mg / pk.cl_l_per_h * (n - tail(k))
    remaining = (ka * tail(k) - k * tail(ka)) / (ka - k)
    return pk.f_oral * regimen.dose_mg / pk.cl_l_per_h * (n - remaining)


def bioavailable_fraction(pk: IndividualPK, regimen: Regimen):
    return 1.0 if regimen.route == "iv" else pk.f_oral


def concentration_mg_per_l(pk: IndividualPK, regimen: Regimen, times_h) -> np.ndarray:
    """Plasma concentration at ``times_h`` after the first dose: shape (patients, times)."""
    t = np.asarray(times_h, dtype=float)[None, :]
    column = IndividualPK(
        *(np.atleast_1d(np.asarray(x, dtype=float))[:, None] for x in (pk.cl_l_per_h, pk.v_l, pk.ka_per_h, pk.f_oral)),
        fu_p=pk.fu_p,
    )
    doses_given = np.clip(np.floor(t / regimen.interval_h) + 1, 1, regimen.n_doses)
    after = np.maximum(t - (doses_given - 1) * regimen.interval_h, 0.0)
    return np.where(t >= 0, _after_last_dose(column, regimen, doses_given, after), 0.0)


def exposure(pk: IndividualPK, regimen: Regimen) -> Exposure:
    """Exposure summaries for every patient of ``pk`` under ``regimen`` (module docstring)."""
    n, tau = regimen.n_doses, regimen.interval_h
    cmax = _after_last_dose(pk, regimen, n, _peak_time_h(pk, regimen, n))
    return Exposure(
        auc_tau_ss=bioavailable_fraction(pk, regimen) * regimen.dose_mg / pk.cl_l_per_h,
        auc_0_end=_auc_0_end(pk, regimen),
        cmax=cmax,
        ctrough=_after_last_dose(pk, regimen, n, tau),
        cmax_ss=_after_last_dose(pk, regimen, np.inf, _peak_time_h(pk, regimen, np.inf)),
        ctrough_ss=_after_last_dose(pk, regimen, np.inf, tau),
        cmax_unbound=pk.fu_p * cmax,
    )
