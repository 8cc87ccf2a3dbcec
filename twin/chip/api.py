"""The public face of the chip models: simulate one chip, many chips, and sensitivities.

All times are hours from the start of the experiment (t = 0, the initial state); outputs
are right-continuous: at an event's time they show the state after the event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from twin.chip.batch import solve_batch
from twin.chip.events import Event, ledger_keys, validate_schedule
from twin.chip.inputs import ParamInput, Value, constant_vector, observable_names, parameter_vector
from twin.chip.registry import Model, system_for
from twin.chip.sensitivity import observable_sensitivities, solve_sensitivities
from twin.chip.solve import Tolerances, check_times, solve_one
from twin.chip.system import ChipSystem


@dataclass(frozen=True)
class ChipRun:
    """One chip of a batch: its parameters, its event schedule, its device constants."""

    params: ParamInput = None
    events: Sequence[Event] = ()
    constants: Mapping[str, Value] | None = None


@dataclass(frozen=True)
class Sensitivities:
    """Observables at the output times and their derivatives ∂y/∂log p, shape (T, P)."""

    times_h: np.ndarray
    parameter_names: tuple[str, ...]
    values: dict[str, np.ndarray]
    d_dlogp: dict[str, np.ndarray] = field(repr=False)


def _prepare(system: ChipSystem, run: ChipRun) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[Event, ...]]:
    p, c = parameter_vector(system, run.params), constant_vector(system, run.constants)
    x0 = system.initial(p[None], c[None])[0]
    return p, c, x0, validate_schedule(run.events, system, x0)


def _results(
    system: ChipSystem,
    names: tuple[str, ...],
    times_h: np.ndarray,
    states: np.ndarray,
    ledgers: np.ndarray,
    p: np.ndarray,
    c: np.ndarray,
    return_states: bool,
) -> dict[str, np.ndarray]:
    """Named outputs from states (..., T, S); leading axes are chips, if any."""
    lead = states.shape[:-1]
    flat = states.reshape(-1, states.shape[-1])
    pp = np.broadcast_to(p[..., None, :], (*lead, p.shape[-1])).reshape(-1, p.shape[-1])
    cc = np.broadcast_to(c[..., None, :], (*lead, c.shape[-1])).reshape(-1, c.shape[-1])
    observed = system.observe(flat, pp, cc)
    result = {"time_h": times_h.copy()}
    result.update({name: observed[name].reshape(lead) for name in names})
    if return_states:
        result.update({name: states[..., i] for i, name in enumerate(system.spec.state_names)})
        result.update({key: ledgers[..., k] for k, key in enumerate(ledger_keys(system))})
    return result


def simulate_chip(
    params: ParamInput,
    events: Sequence[Event],
    times: Sequence[float] | np.ndarray,
    constants: Mapping[str, Value] | None = None,
    observables: Sequence[str] | None = None,
    *,
    model: Model = "liver_chip",
    return_states: bool = False,
    rtol: float = 1e-8,
    atol: float = 1e-10,
    method: str = "BDF",
) -> dict[str, np.ndarray]:
    """Simulate one chip with scipy's stiff integrator (``method``: BDF, Radau or LSODA).

    Returns ``{"time_h": (T,), observable: (T,), ...}``; with ``return_states`` also every
    state by name and the cumulative event ledger (``drug_added_nmol``,
    ``removed_<state>_nmol``: what doses/media changes put in and samples/media changes took out).
    """
    system = system_for(model)
    times_h = check_times(times)
    p, c, x0, schedule = _prepare(system, ChipRun(params, events, constants))
    states, ledgers = solve_one(system, p, c, x0, schedule, times_h, Tolerances(rtol, atol, method))
    return _results(system, observable_names(system, observables), times_h, states, ledgers, p, c, return_states)


def simulate_chips(
    chips: Sequence[ChipRun],
    times: Sequence[float] | np.ndarray,
    observables: Sequence[str] | None = None,
    *,
    model: Model = "liver_chip",
    return_states: bool = False,
    rtol: float = 1e-8,
    atol: float = 1e-10,
) -> dict[str, np.ndarray]:
    """Simulate many chips at once (vectorised Rodas4); arrays are (n_chips, T).

    Each chip has its own parameters, constants and event schedule; all share the output
    times. Same outputs as ``simulate_chip``, one row per chip.
    """
    system = system_for(model)
    times_h = check_times(times)
    prepared = [_prepare(system, chip) for chip in chips]
    p = np.array([item[0] for item in prepared]).reshape(len(chips), system.n_params)
    c = np.array([item[1] for item in prepared]).reshape(len(chips), len(system.spec.constants))
    x0 = np.array([item[2] for item in prepared]).reshape(len(chips), system.n_states)
    states, ledgers = solve_batch(system, p, c, x0, [item[3] for item in prepared], times_h, Tolerances(rtol, atol))
    return _results(system, observable_names(system, observables), times_h, states, ledgers, p, c, return_states)


def sensitivities(
    params: ParamInput,
    events: Sequence[Event],
    times: Sequence[float] | np.ndarray,
    constants: Mapping[str, Value] | None = None,
    observables: Sequence[str] | None = None,
    *,
    model: Model = "liver_chip",
    rtol: float = 1e-8,
    atol: float = 1e-10,
) -> Sensitivities:
    """Observables and their forward sensitivities with respect to the log-parameters."""
    system = system_for(model)
    times_h = check_times(times)
    p, c, _, schedule = _prepare(system, ChipRun(params, events, constants))
    states, dstates = solve_sensitivities(system, p, c, schedule, times_h, Tolerances(rtol, atol))
    values, grads = observable_sensitivities(system, p, c, states, dstates)
    names = observable_names(system, observables)
    return Sensitivities(
        times_h, system.spec.parameter_names, {k: values[k] for k in names}, {k: grads[k] for k in names}
    )
