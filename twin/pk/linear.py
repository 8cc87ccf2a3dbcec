"""Exact solution of the linear models, batched over subjects (eigen-decomposition).

With A = V·diag(λ)·V⁻¹ the state in eigen-coordinates y = V⁻¹x obeys y' = λ·y + V⁻¹r, so
between two actions, with the infusion rates r constant,

    y(t + h) = e^{λh}·y(t) + h·φ₁(λh)·V⁻¹r,      φ₁(z) = (e^z − 1)/z,

element by element: no integration error, only rounding. All subjects step through their
action lists together (step j of every subject at once), so the Python loop runs once per
action index, not per subject or per time point. Steady states are closed-form geometric
sums in the same coordinates. Subjects whose A is nearly defective (two eigenvalues nearly
equal, e.g. ka ≈ CL/V, where V is ill-conditioned) are flagged for the integrator instead.
"""

from __future__ import annotations

import numpy as np

from twin.pk.schedule import BOLUS, NOOP, OUTPUT, RATE, RESET, SS, Schedule, SteadyDoses, past_doses

MAX_CONDITION = 1e7  # cond(V) above this loses > 1e-9 relative accuracy: use the integrator


def phi1(z: np.ndarray) -> np.ndarray:
    """(e^z − 1)/z, accurate near 0."""
    small = np.abs(z) < 1e-8
    safe = np.where(small, 1.0, z)
    return np.where(small, 1.0 + z / 2, np.expm1(safe) / safe)


def simulate_linear(
    schedule: Schedule, a: np.ndarray, weights: np.ndarray, n_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions c·x for every OUTPUT row, and a mask of subjects left to the integrator.

    ``a``: (subjects, n, n) rate matrices; ``weights``: (subjects, n) observation weights c.
    """
    lam, v = np.linalg.eig(a)
    if np.all(np.abs(lam.imag) == 0):
        lam, v = lam.real, v.real
    unsolved = ~(np.linalg.cond(v) < MAX_CONDITION)
    v[unsolved] = np.eye(a.shape[-1])  # placeholders; their predictions are discarded
    lam[unsolved] = -1.0
    inputs = np.swapaxes(np.linalg.inv(v), 1, 2)  # inputs[s, c] = V⁻¹ e_c: a unit dose into c
    readout = np.einsum("sn,snm->sm", weights, v)  # c·V: prediction from eigen-coordinates
    out = np.full(n_rows, np.nan)
    _run(_lockstep(schedule), lam, inputs, readout, schedule.steady, out)
    return out, unsolved


def _lockstep(schedule: Schedule) -> dict[str, np.ndarray]:
    """(subjects, steps) tables of the actions; short subjects padded with no-ops."""
    bounds = schedule.bounds()
    counts = np.diff(bounds)
    steps = int(counts.max(initial=0))
    position = np.arange(len(schedule.subject)) - bounds[schedule.subject]
    shape = (schedule.n_subjects, steps)
    tables = {"kind": np.full(shape, NOOP), "cmt": np.zeros(shape, int), "value": np.zeros(shape)}
    for name in tables:
        tables[name][schedule.subject, position] = getattr(schedule, name)
    last_time = np.zeros(schedule.n_subjects)
    last_time[counts > 0] = schedule.time_h[bounds[1:][counts > 0] - 1]
    tables["time"] = np.repeat(last_time[:, None], steps, axis=1)
    tables["time"][schedule.subject, position] = schedule.time_h
    return tables


def _run(tables, lam, inputs, readout, steady: SteadyDoses, out: np.ndarray) -> None:
    n_subjects = lam.shape[0]
    y = np.zeros_like(lam)  # amounts, eigen-coordinates
    w = np.zeros_like(lam)  # infusion rates, eigen-coordinates
    everyone = np.arange(n_subjects)
    t_prev = tables["time"][:, 0].copy() if tables["time"].size else np.zeros(n_subjects)
    for j in range(tables["kind"].shape[1]):
        t = tables["time"][:, j]
        dt = np.maximum(t - t_prev, 0.0)[:, None]  # time restarts only at a reset
        t_prev = t
        z = lam * dt
        y = np.exp(z) * y + w * (dt * phi1(z))
        kind, value = tables["kind"][:, j], tables["value"][:, j]
        unit = inputs[everyone, tables["cmt"][:, j]]
        y += unit * np.where(kind == BOLUS, value, 0.0)[:, None]
        w += unit * np.where(kind == RATE, value, 0.0)[:, None]
        reset = kind == RESET
        y[reset] = 0.0
        w[reset] = 0.0
        for s in np.flatnonzero(kind == SS):
            y[s] = _steady_state(lam[s], unit[s], steady, int(value[s])) + (
                y[s] if steady.mode[int(value[s])] == 2 else 0
            )
        shown = kind == OUTPUT
        out[value[shown].astype(int)] = np.real(np.sum(readout[shown] * y[shown], axis=1))


def _steady_state(lam: np.ndarray, unit: np.ndarray, steady: SteadyDoses, i: int) -> np.ndarray:
    """Eigen-coordinates at an SS record from the regime's earlier doses (superposition)."""
    amount, rate = steady.amount_mg[i], steady.rate_mg_per_h[i]
    lag, interval = steady.lag_h[i], steady.interval_h[i]
    if interval == 0:  # constant infusion, run forever
        return -rate * unit / lam
    per_period = -np.expm1(lam * interval)  # 1 − e^{λ·II}: sums the geometric tail
    duration = steady.duration_h[i]
    k_started, k_ended = past_doses(lag, duration, interval)
    if rate == 0:
        return amount * unit * np.exp(lam * (k_ended * interval - lag)) / per_period
    given = rate * unit * duration * phi1(lam * duration)  # one whole infusion, at its end
    total = given * np.exp(lam * (k_ended * interval - lag - duration)) / per_period
    for k in range(k_started, k_ended):  # still running: infused so far
        elapsed = k * interval - lag
        total = total + rate * unit * elapsed * phi1(lam * elapsed)
    return total
