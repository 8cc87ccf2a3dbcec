"""Predictions and sensitivities for the designer, shared across candidates.

Candidates that share a dose share a simulation: for each posterior draw and dose level the
twin is run once at the union of every candidate's sampling times, plus once per
parameter step up and down (central differences on the log scale), all in one batched
call. A candidate's Jacobian is then a slice of that grid.

Approximation (stated in docs/design-space.md): the grid is simulated without the sample
removals. A sample takes a few % of the medium and leaves the concentration itself
unchanged at that instant; the fit of the real experiment uses the exact events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from calibration.design.posterior import Posterior
from twin.chip import ChipRun, Dose, simulate_chip, simulate_chips

LOG_STEP = 0.02  # central-difference step on the log scale (2 %)
CHUNK = 2000  # chips per batched call (bounds memory)
TOLERANCES = {"rtol": 1e-6, "atol": 1e-9}


def twin_constants(constants: Mapping[str, float]) -> dict[str, float]:
    """Lab-dataset chip constants → the twin's constant names."""
    return {
        "V_m0": constants["v_medium_ml"],
        "V_c": constants["v_cell_ml"],
        "N_cells": constants["n_cells_million"],
        "kla": constants["kla_per_h"],
    }


@dataclass
class Grid:
    """Simulations on (draw k, dose d): values (K, D, O, T) and ∂values/∂log θ (K, D, P, O, T)."""

    doses_um: np.ndarray
    times_h: np.ndarray
    observables: tuple[str, ...]
    values: np.ndarray
    d_dlog: np.ndarray | None

    def time_index(self, times: Sequence[float]) -> np.ndarray:
        return np.searchsorted(self.times_h, np.asarray(times, dtype=float))

    def dose_index(self, dose_um: float) -> int:
        return int(np.searchsorted(self.doses_um, dose_um))


def simulate_grid(
    posterior: Posterior,
    draws_log: np.ndarray,
    doses_um: Sequence[float],
    times_h: Sequence[float],
    observables: Sequence[str],
    constants: Mapping[str, float],
    *,
    sensitivities: bool = True,
    engine: str = "batch",
    step: float = LOG_STEP,
) -> Grid:
    """Run every (draw, dose, ±step) once; ``engine`` "batch" (vectorised Rodas4) or "odeint" (one by one)."""
    doses = np.unique(np.asarray(doses_um, dtype=float))
    times = np.unique(np.asarray(times_h, dtype=float))
    n_draws, n_par = draws_log.shape
    shifts = [np.zeros(n_par)]
    if sensitivities:
        for i in range(n_par):
            shifts += [step * np.eye(n_par)[i], -step * np.eye(n_par)[i]]
    shifts_arr = np.asarray(shifts)
    consts = twin_constants(constants)
    runs = [
        ChipRun(posterior.parameters(draw + shift), (Dose(0.0, float(dose * constants["v_medium_ml"]), 0.0),), consts)
        for draw in draws_log
        for dose in doses
        for shift in shifts_arr
    ]
    out = _run(runs, times, tuple(observables), posterior.model, engine)  # (O, N, T)
    out = out.reshape(len(observables), n_draws, doses.size, len(shifts), times.size).transpose(1, 2, 3, 0, 4)
    values = out[:, :, 0]
    d_dlog = None
    if sensitivities:
        d_dlog = (out[:, :, 1::2] - out[:, :, 2::2]) / (2 * step)
    return Grid(doses, times, tuple(observables), values, d_dlog)


def _run(runs: list[ChipRun], times: np.ndarray, observables: tuple[str, ...], model: str, engine: str) -> np.ndarray:
    if engine == "odeint":
        rows = [
            simulate_chip(
                run.params,
                run.events,
                times,
                run.constants,
                list(observables),
                model=model,
                method="odeint",
                **TOLERANCES,
            )
            for run in runs
        ]
        return np.stack([np.stack([row[o] for row in rows]) for o in observables])
    parts = []
    for start in range(0, len(runs), CHUNK):
        result = simulate_chips(runs[start : start + CHUNK], times, list(observables), model=model, **TOLERANCES)
        parts.append(np.stack([result[o] for o in observables]))
    return np.concatenate(parts, axis=1)


def fisher_by_schedule(
    grid: Grid, schedules: Mapping[str, Sequence[float]], residual: Sequence[tuple[float, float]]
) -> dict[str, np.ndarray]:
    """F = JᵀWJ for every (draw, dose) and schedule: {schedule: (K, D, P, P)}.

    ``residual`` gives (additive SD, proportional CV) per observable; W = 1/(a² + (b·f)²).
    """
    add = np.array([r[0] for r in residual])[None, None, :, None]
    cv = np.array([r[1] for r in residual])[None, None, :, None]
    out = {}
    for name, times in schedules.items():
        index = grid.time_index(times)
        f = grid.values[..., index]  # (K, D, O, n)
        weight = 1.0 / (add**2 + (cv * f) ** 2 + 1e-300)
        jac = grid.d_dlog[..., index]  # (K, D, P, O, n)
        out[name] = np.einsum("kdpon,kdon,kdqon->kdpq", jac, weight, jac)
    return out
