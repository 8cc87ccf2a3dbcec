"""Many chips at once: a Rosenbrock method (Rodas4) vectorised over chips.

Every chip keeps its own time, step size and error control, and steps exactly onto its own
event and output times, so chips with different parameters and schedules never slow one
another down (stacking them into one big ODE would force one step size on all, and would
restart the whole system at the union of every chip's events). Each step is a handful of
numpy operations over all chips: the analytic Jacobians, one batched S×S inverse, six
stages. Rodas4 is L-stable and stiffly accurate, with an embedded order-3 error estimate.

Rodas4 coefficients: Hairer & Wanner, Solving ODEs II (1996), in the "transformed" form
used by their RODAS code: (I/(hγ) − J)·K_i = f(x + Σ a_ij K_j) + Σ (c_ij/h)·K_j,
x_new = x + Σ m_j K_j, error = K_6.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from twin.chip.events import Event, Sample, event_jump, ledger_keys
from twin.chip.solve import Tolerances
from twin.chip.system import ChipSystem
from twin.errors import InvalidValueError

GAMMA = 0.25
_A = [
    0.1544000000000000e01,
    0.9466785280815826e00,
    0.2557011698983284e00,
    0.3314825187068521e01,
    0.2896124015972201e01,
    0.9986419139977817e00,
    0.1221224509226641e01,
    0.6019134481288629e01,
    0.1253708332932087e02,
    -0.6878860361058950e00,
]
_C = [
    -0.5668800000000000e01,
    -0.2430093356833875e01,
    -0.2063599157091915e00,
    -0.1073529058151375e00,
    -0.9594562251023355e01,
    -0.2047028614809616e02,
    0.7496443313967647e01,
    -0.1024680431464352e02,
    -0.3399990352819905e02,
    0.1170890893206160e02,
    0.8083246795921522e01,
    -0.7981132988064893e01,
    -0.3152159432874371e02,
    0.1631930543123136e02,
    -0.6058818238834054e01,
]
A = np.zeros((6, 6))
C = np.zeros((6, 6))
A[np.tril_indices(5, -1)] = _A  # stages 2-5, row by row
A[5, :5] = [*_A[6:10], 1.0]
C[np.tril_indices(6, -1)] = _C
M = np.array([*_A[6:10], 1.0, 1.0])
FIRST_STEP_H = 1e-3
SAFETY, FAC_MIN, FAC_MAX = 0.9, 0.2, 6.0


def rodas4_step(
    system: ChipSystem, x: np.ndarray, p: np.ndarray, c: np.ndarray, h: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One Rodas4 step of size h (per chip); returns (x_new, error estimate)."""
    n, s = x.shape
    w = np.eye(s)[None] / (GAMMA * h)[:, None, None] - system.jac(x, p, c)
    w_inv = np.linalg.inv(w)
    stages: list[np.ndarray] = []
    for i in range(6):
        y = x + sum(A[i, j] * stages[j] for j in range(i)) if i else x
        r = system.rhs(y, p, c)
        if i:
            r = r + sum(C[i, j] * stages[j] for j in range(i)) / h[:, None]
        stages.append(np.einsum("nij,nj->ni", w_inv, r))
    x_new = x + sum(M[j] * stages[j] for j in range(6))
    return x_new, stages[5]


def error_norm(x: np.ndarray, x_new: np.ndarray, err: np.ndarray, tol: Tolerances) -> np.ndarray:
    scale = tol.atol + tol.rtol * np.maximum(np.abs(x), np.abs(x_new))
    return np.sqrt(np.mean((err / scale) ** 2, axis=1))


class _Chips:
    """Per-chip bookkeeping: event pointers, output pointers, ledgers."""

    def __init__(self, system: ChipSystem, schedules: Sequence[Sequence[Event]], times_h: np.ndarray) -> None:
        self.system, self.times_h = system, times_h
        self.t_end = float(times_h[-1])
        self.events = [[e for e in sched if e.time_h <= self.t_end] for sched in schedules]
        width = max((len(e) for e in self.events), default=0) + 1  # a last column of inf: no more events
        self.event_times = np.full((len(schedules), width), np.inf)
        for i, sched in enumerate(self.events):
            self.event_times[i, : len(sched)] = [e.time_h for e in sched]
        self.next_event = np.zeros(len(schedules), dtype=int)
        self.next_out = np.zeros(len(schedules), dtype=int)
        self.keys = ledger_keys(system)
        self.ledger = np.zeros((len(schedules), len(self.keys)))

    def event_time(self, chips: np.ndarray) -> np.ndarray:
        return self.event_times[chips, self.next_event[chips]]

    def apply_due(self, chips: np.ndarray, t: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Apply every event due at each chip's time t; returns the mask of chips that had one other than
        a sample. A sample scales the medium's solutes in proportion, so the solution stays as smooth
        as before and the step size carries on; a dose or a media change starts a new transient."""
        hit = self.event_time(chips) == t
        jolted = np.zeros(len(chips), dtype=bool)
        for k in np.flatnonzero(hit):
            i = chips[k]
            while self.next_event[i] < len(self.events[i]) and self.events[i][self.next_event[i]].time_h == t[k]:
                event = self.events[i][self.next_event[i]]
                x[k], entries = event_jump(x[k], event, self.system)
                for key, value in entries.items():
                    self.ledger[i, self.keys.index(key)] += value
                jolted[k] |= not isinstance(event, Sample)
                self.next_event[i] += 1
        return jolted

    def record(self, chips: np.ndarray, t: np.ndarray, x: np.ndarray, out: np.ndarray, led: np.ndarray) -> None:
        """Write outputs for chips standing exactly on their next output time."""
        n_times = len(self.times_h)
        while True:
            pending = self.next_out[chips] < n_times
            due = np.zeros(len(chips), dtype=bool)
            due[pending] = self.times_h[self.next_out[chips[pending]]] == t[pending]
            if not due.any():
                return
            rows, cols = chips[due], self.next_out[chips[due]]
            out[rows, cols], led[rows, cols] = x[due], self.ledger[rows]
            self.next_out[rows] += 1

    def target(self, chips: np.ndarray) -> np.ndarray:
        out_t = self.times_h[np.minimum(self.next_out[chips], len(self.times_h) - 1)]
        return np.minimum(out_t, self.event_time(chips))


def solve_batch(
    system: ChipSystem,
    p: np.ndarray,
    c: np.ndarray,
    x0: np.ndarray,
    schedules: Sequence[Sequence[Event]],
    times_h: np.ndarray,
    tol: Tolerances = Tolerances(),
) -> tuple[np.ndarray, np.ndarray]:
    """States (n, T, S) and cumulative ledgers (n, T, L) of n chips; schedules already validated."""
    n, n_times = x0.shape[0], len(times_h)
    book = _Chips(system, schedules, times_h)
    out = np.empty((n, n_times, x0.shape[1]))
    led = np.zeros((n, n_times, len(book.keys)))
    chips, t, x = np.arange(n), np.zeros(n), np.array(x0, dtype=float)
    h = np.full(n, FIRST_STEP_H)
    book.apply_due(chips, t, x)
    book.record(chips, t, x, out, led)
    while True:
        live = book.next_out[chips] < n_times
        chips, t, x, h = chips[live], t[live], x[live], h[live]
        if chips.size == 0:
            return out, led
        t_target = book.target(chips)
        lands = h >= t_target - t
        step = np.where(lands, t_target - t, h)
        x_new, err = rodas4_step(system, x, p[chips], c[chips], step)
        norm = error_norm(x, x_new, err, tol)
        ok = np.isfinite(norm) & (norm <= 1.0)
        factor = SAFETY * np.where(norm > 0, norm, 1e-10) ** -0.25
        factor = np.where(np.isfinite(factor), factor, FAC_MIN)
        h_before, h = h, step * np.clip(factor, FAC_MIN, np.where(ok, FAC_MAX, 1.0))
        # a step cut short to land on an event/output says little about the next one
        h = np.where(ok & lands, np.maximum(h, h_before), h)
        if np.any(h < 1e-12 * np.maximum(1.0, t)):
            raise InvalidValueError(
                "the batched integrator's step size underflowed; check the parameters are in a plausible range"
            )
        t = np.where(ok, np.where(lands, t_target, t + step), t)
        x[ok] = x_new[ok]
        landed = ok & lands
        if landed.any():
            idx = np.flatnonzero(landed)
            x_landed = x[idx]
            hit = book.apply_due(chips[idx], t[idx], x_landed)
            x[idx] = x_landed
            h[idx[hit]] = np.minimum(h[idx[hit]], FIRST_STEP_H)  # restart small after a dose or media change
            book.record(chips[idx], t[idx], x[idx], out, led)
