"""Forward sensitivities of the observables with respect to the log-parameters.

The state sensitivities S = ∂x/∂log p solve S' = J·S + (∂f/∂p)·diag(p), integrated together
with the model (one augmented stiff system, restarted at every event like the model).
Events have parameter-free times and sizes, so they map S through their own state
Jacobian (``twin.chip.events.sensitivity_jump``). Observables then give
∂y/∂log p = (∂y/∂x)·S; the chip observables depend on states and constants only.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from twin.chip.events import Event, event_jump, sensitivity_jump
from twin.chip.solve import Tolerances, run_segments, scipy_integrator
from twin.chip.system import ChipSystem


def solve_sensitivities(
    system: ChipSystem,
    p: np.ndarray,
    c: np.ndarray,
    events: Sequence[Event],
    times_h: np.ndarray,
    tol: Tolerances = Tolerances(),
) -> tuple[np.ndarray, np.ndarray]:
    """States (T, S) and state sensitivities ∂x/∂log p (T, S, P) of one chip."""
    n_s, n_p = system.n_states, system.n_params
    pp, cc = p[None, :], c[None, :]

    def split(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return y[:n_s], y[n_s:].reshape(n_s, n_p)

    def fun(t: float, y: np.ndarray) -> np.ndarray:
        x, s = split(y)
        jac = system.jac(x[None], pp, cc)[0]
        ds = jac @ s + system.dfdp(x[None], pp, cc)[0] * p[None, :]
        return np.concatenate([system.rhs(x[None], pp, cc)[0], ds.ravel()])

    def jac(t: float, y: np.ndarray) -> np.ndarray:
        # Block-diagonal Newton matrix (the "simultaneous corrector" approximation of
        # CVODES): it only steers the Newton iteration, the accuracy comes from fun.
        j = system.jac(split(y)[0][None], pp, cc)[0]
        full = np.zeros((n_s * (n_p + 1),) * 2)
        full[:n_s, :n_s] = j
        full[n_s:, n_s:] = np.kron(j, np.eye(n_p))
        return full

    def jump(y: np.ndarray, event: Event) -> tuple[np.ndarray, dict[str, float]]:
        x, s = split(y)
        x_new, entries = event_jump(x, event, system)
        return np.concatenate([x_new, sensitivity_jump(s, x, event, system).ravel()]), entries

    x0 = system.initial(pp, cc)[0]
    s0 = system.dinitial_dp(pp, cc)[0] * p[None, :]
    y0 = np.concatenate([x0, s0.ravel()])
    out, _ = run_segments(y0, events, times_h, scipy_integrator(fun, jac, tol), jump, ())
    return out[:, :n_s], out[:, n_s:].reshape(len(times_h), n_s, n_p)


def observable_sensitivities(
    system: ChipSystem, p: np.ndarray, c: np.ndarray, states: np.ndarray, dstates: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Observables (T,) and their ∂/∂log p (T, P) from states (T, S) and ∂x/∂log p (T, S, P)."""
    n_times = states.shape[0]
    pp, cc = np.repeat(p[None], n_times, 0), np.repeat(c[None], n_times, 0)
    values = system.observe(states, pp, cc)
    grads = system.dobs_dx(states, pp, cc)
    return values, {name: np.einsum("ts,tsp->tp", grads[name], dstates) for name in values}
