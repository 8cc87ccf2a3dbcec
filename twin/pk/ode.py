"""Per-subject numerical integration (scipy solve_ivp, analytic Jacobian), for any model.

The integrator is restarted at every action of the schedule, so doses, infusion starts and
stops and resets are exact in time. A steady state (SS 1 or 2) is found by dosing the
regime from the reset state over K intervals, doubling K until the state at the record's
time stops changing; SS 2 adds (steady state − initial state) to the current state (for a
non-linear model, superposition is NONMEM's definition of SS 2, not an identity).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp

from twin.errors import InvalidValueError
from twin.model import ModelSpec
from twin.pk.schedule import BOLUS, OUTPUT, RATE, RESET, SS, Schedule, SteadyDoses, past_doses
from twin.pk.systems import initial_state, rhs_and_jacobian

MAX_PERIODS = 8192


@dataclass(frozen=True)
class Integrator:
    method: str = "LSODA"
    rtol: float = 1e-8
    atol: float = 1e-12


class _Subject:
    """One subject's state, infusion rates and integrator."""

    def __init__(self, spec: ModelSpec, p: dict[str, float], integrator: Integrator) -> None:
        self.rhs, self.jac = rhs_and_jacobian(spec, p)
        self.x0 = initial_state(spec, p)
        self.integrator = integrator

    def advance(self, x: np.ndarray, rates: np.ndarray, t0: float, t1: float) -> np.ndarray:
        if t1 <= t0:
            return x
        if t1 - t0 <= 1e-9 * max(1.0, abs(t1)):  # rounding-size gap: LSODA cannot start on it
            return x + (t1 - t0) * self.rhs(t0, x, rates)
        i = self.integrator
        sol = solve_ivp(
            lambda t, y: self.rhs(t, y, rates), (t0, t1), x, method=i.method, jac=self.jac, rtol=i.rtol, atol=i.atol
        )
        if not sol.success:
            raise InvalidValueError(f"the integrator failed between t = {t0:g} h and {t1:g} h: {sol.message}")
        return sol.y[:, -1]

    def steady_state(self, steady: SteadyDoses, i: int) -> np.ndarray:
        """State at an SS record from the regime dosed since long ago (from the reset state)."""
        previous = None
        periods = 8
        while periods <= MAX_PERIODS:
            x = self._dose_regime(steady, i, periods)
            if previous is not None and np.max(np.abs(x - previous)) <= 10 * self.integrator.rtol * (
                np.max(np.abs(x)) + 1e-300
            ):
                return x
            previous, periods = x, periods * 2
        raise InvalidValueError(f"no steady state after {MAX_PERIODS} dosing intervals; check II and the parameters")

    def _dose_regime(self, steady: SteadyDoses, i: int, periods: int) -> np.ndarray:
        """Amounts at time 0 after the regime's doses at −k·II, k = periods … 1."""
        cmt, rate, interval = steady.cmt[i], steady.rate_mg_per_h[i], steady.interval_h[i]
        events: list[tuple[float, int, float]] = []  # (time, kind, amount or rate change)
        if interval == 0:  # constant infusion, started `periods` time constants ago
            events.append((-periods / self._slowest_rate(), RATE, rate))
        else:
            lag, duration = steady.lag_h[i], steady.duration_h[i]
            k_started, _ = past_doses(lag, duration, interval)
            for k in range(periods, k_started - 1, -1):
                start = lag - k * interval
                if rate == 0:
                    events.append((start, BOLUS, steady.amount_mg[i]))
                else:
                    events.append((start, RATE, rate))
                    if start + duration <= 0:
                        events.append((start + duration, RATE, -rate))
        return self._replay(sorted(events), cmt)

    def _replay(self, events: list[tuple[float, int, float]], cmt: int) -> np.ndarray:
        x, rates = self.x0.copy(), np.zeros_like(self.x0)
        t = events[0][0]
        for time, kind, amount in events:
            x = self.advance(x, rates, t, time)
            t = time
            if kind == BOLUS:
                x[cmt] += amount
            else:
                rates[cmt] += amount
        return self.advance(x, rates, t, 0.0)

    def _slowest_rate(self) -> float:
        eig = np.linalg.eigvals(self.jac(0.0, self.x0))
        return float(np.min(-eig.real[eig.real < 0], initial=1.0))


def simulate_subject(
    spec: ModelSpec,
    p: dict[str, float],
    schedule: Schedule,
    start: int,
    stop: int,
    weights: np.ndarray,
    out: np.ndarray,
    integrator: Integrator,
) -> None:
    """Run actions[start:stop] (one subject) and write c·x into ``out`` for each OUTPUT."""
    subject = _Subject(spec, p, integrator)
    x, rates = subject.x0.copy(), np.zeros_like(subject.x0)
    t = schedule.time_h[start] if stop > start else 0.0
    for a in range(start, stop):
        time, kind, cmt, value = schedule.time_h[a], schedule.kind[a], schedule.cmt[a], schedule.value[a]
        x = subject.advance(x, rates, t, time)
        t = time
        if kind == BOLUS:
            x[cmt] += value
        elif kind == RATE:
            rates[cmt] += value
        elif kind == RESET:
            x, rates = subject.x0.copy(), np.zeros_like(x)
        elif kind == SS:
            steady = subject.steady_state(schedule.steady, int(value))
            x = steady if schedule.steady.mode[int(value)] == 1 else x + steady - subject.x0
        elif kind == OUTPUT:
            out[int(value)] = weights @ x
