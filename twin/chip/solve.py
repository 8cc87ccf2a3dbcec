"""One chip at a time: scipy's stiff integrators, restarted exactly at every event.

Events are integration boundaries: the integrator runs up to an event time, the event
changes the state, and a fresh integration starts from there — so a discontinuity is
never smoothed over or found approximately. This is the reference path; ``batch`` is the
fast one for many chips.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy.integrate import odeint, solve_ivp

from twin.chip.events import Event, event_jump, ledger_keys
from twin.chip.system import ChipSystem
from twin.errors import InvalidValueError

# integrate(t0_h, t1_h, y0, t_eval_h) -> (y at t1, y at t_eval as (len(t_eval), dim))
Integrate = Callable[[float, float, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
Jump = Callable[[np.ndarray, Event], tuple[np.ndarray, dict[str, float]]]


@dataclass(frozen=True)
class Tolerances:
    """``method``: a solve_ivp method (BDF, Radau, LSODA), or "odeint" — LSODA stepping in
    Fortran through scipy's odeint, 10–40× faster for one chip; the path fits use."""

    rtol: float = 1e-8
    atol: float = 1e-10
    method: str = "BDF"


def run_segments(
    y0: np.ndarray,
    events: Sequence[Event],
    times_h: np.ndarray,
    integrate: Integrate,
    jump: Jump,
    ledger_names: Sequence[str],
) -> tuple[np.ndarray, np.ndarray]:
    """Integrate from t = 0 through ``events`` and report at ``times_h`` (right-continuous).

    Returns (y at times, shape (T, dim); cumulative ledger at times, shape (T, L)).
    """
    out = np.empty((len(times_h), len(y0)))
    ledger_out = np.zeros((len(times_h), len(ledger_names)))
    ledger = dict.fromkeys(ledger_names, 0.0)
    y, t_now, t_end = np.array(y0, dtype=float), 0.0, float(times_h[-1])

    def advance_to(t_stop: float, last: bool) -> None:
        nonlocal y, t_now
        mask = (times_h >= t_now) & ((times_h <= t_stop) if last else (times_h < t_stop))
        ledger_out[mask] = [ledger[k] for k in ledger_names]
        if t_stop > t_now:
            y, out[mask] = integrate(t_now, t_stop, y, times_h[mask])
        else:
            out[mask] = y
        t_now = t_stop

    for event in events:
        if event.time_h > t_end:
            break
        advance_to(event.time_h, last=False)
        y, entries = jump(y, event)
        for key, value in entries.items():
            ledger[key] = ledger.get(key, 0.0) + value
    advance_to(t_end, last=True)
    return out, ledger_out


def scipy_integrator(fun: Callable, jac: Callable, tol: Tolerances) -> Integrate:
    """An ``Integrate`` on scipy's solve_ivp with an analytic Jacobian."""

    def integrate(t0: float, t1: float, y: np.ndarray, t_eval: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # solve_ivp wants strictly increasing t_eval; outputs may repeat a time or end at t1
        t_unique, where = np.unique(np.append(t_eval, t1), return_inverse=True)
        sol = solve_ivp(fun, (t0, t1), y, method=tol.method, jac=jac, rtol=tol.rtol, atol=tol.atol, t_eval=t_unique)
        if not sol.success:
            raise InvalidValueError(
                f"the integrator failed between {t0:g} h and {t1:g} h: {sol.message}; "
                "check the parameters are in a plausible range"
            )
        return sol.y[:, -1], sol.y[:, where[:-1]].T

    return integrate


def odeint_integrator(fun: Callable, jac: Callable, tol: Tolerances) -> Integrate:
    """An ``Integrate`` on odeint (LSODA): it interpolates to output times without stopping there."""

    def integrate(t0: float, t1: float, y: np.ndarray, t_eval: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        later = t_eval > t0
        grid, where = np.unique(np.concatenate([[t0], t_eval[later], [t1]]), return_inverse=True)
        out = np.empty((len(t_eval), len(y)))
        out[~later] = y
        solution, info = odeint(
            lambda x, t: fun(t, x),
            y,
            grid,
            Dfun=lambda x, t: jac(t, x),
            rtol=tol.rtol,
            atol=tol.atol,
            mxstep=200_000,
            full_output=True,
        )
        if info["message"] != "Integration successful.":
            raise InvalidValueError(
                f"the integrator failed between {t0:g} h and {t1:g} h: {info['message']}; "
                "check the parameters are in a plausible range"
            )
        out[later] = solution[where[1 : 1 + int(later.sum())]]
        return solution[-1], out

    return integrate


def check_times(times_h: np.ndarray) -> np.ndarray:
    times_h = np.asarray(times_h, dtype=float).ravel()
    if times_h.size == 0 or not np.all(np.isfinite(times_h)):
        raise InvalidValueError("times must be a non-empty list of finite numbers of hours")
    if times_h[0] < 0 or np.any(np.diff(times_h) < 0):
        raise InvalidValueError("times must be non-negative and in increasing order (hours from the start, t = 0)")
    return times_h


def solve_one(
    system: ChipSystem,
    p: np.ndarray,
    c: np.ndarray,
    x0: np.ndarray,
    events: Sequence[Event],
    times_h: np.ndarray,
    tol: Tolerances = Tolerances(),
) -> tuple[np.ndarray, np.ndarray]:
    """States (T, S) and cumulative ledger (T, L) of one chip; events already validated."""
    pp, cc = p[None, :], c[None, :]

    def fun(t: float, y: np.ndarray) -> np.ndarray:
        if system.rhs_one is not None:
            return system.rhs_one(y, p, c)
        return system.rhs(y[None, :], pp, cc)[0]

    def jac(t: float, y: np.ndarray) -> np.ndarray:
        return system.jac(y[None, :], pp, cc)[0]

    def jump(y: np.ndarray, event: Event) -> tuple[np.ndarray, dict[str, float]]:
        return event_jump(y, event, system)

    integrator = odeint_integrator if tol.method == "odeint" else scipy_integrator
    return run_segments(x0, events, times_h, integrator(fun, jac, tol), jump, ledger_keys(system))
