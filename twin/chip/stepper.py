"""A chip stepped forward in time, a little at a time (for the simulated rig).

    state = initial_state(params, constants)
    state = advance(state, 0.25, params)                     # 15 min of perfusion
    state = apply_event(state, Dose(state.time_h, "5 nmol", "10 uL"))

``ChipState`` is immutable: every call returns a new one, so a caller can keep checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

import numpy as np

from twin.chip.events import Event, event_jump, ledger_keys, validate_schedule
from twin.chip.inputs import ParamInput, Value, constant_vector, parameter_vector
from twin.chip.registry import system_for
from twin.chip.solve import Tolerances, scipy_integrator
from twin.chip.system import ChipSystem
from twin.errors import InvalidValueError
from twin.units import to_unit

EVENT_TIME_SLACK_H = 1e-9


@dataclass(frozen=True)
class ChipState:
    """A chip at ``time_h``: its state vector (spec order), constants and event ledger."""

    model: str
    time_h: float
    x: np.ndarray = field(repr=False)
    constants: np.ndarray = field(repr=False)
    ledger: Mapping[str, float] = field(default_factory=dict)

    @property
    def system(self) -> ChipSystem:
        return system_for(self.model)

    def __getitem__(self, name: str) -> float:
        """A state (``"A_m"``) or ledger entry (``"drug_added_nmol"``) by name."""
        index = self.system.state_index
        if name in index:
            return float(self.x[index[name]])
        if name in self.ledger:
            return self.ledger[name]
        raise KeyError(f"{name!r} is neither a state of {self.model} nor a ledger entry")

    def observables(self, params: ParamInput = None) -> dict[str, float]:
        system = self.system
        p = parameter_vector(system, params)
        return {k: float(v[0]) for k, v in system.observe(self.x[None], p[None], self.constants[None]).items()}


def initial_state(
    params: ParamInput = None, constants: Mapping[str, Value] | None = None, model: str = "liver_chip"
) -> ChipState:
    """The chip at t = 0: no drug, cells fully viable, oxygen at its steady state."""
    system = system_for(model)
    p, c = parameter_vector(system, params), constant_vector(system, constants)
    x0 = system.initial(p[None], c[None])[0]
    return ChipState(model, 0.0, x0, c, dict.fromkeys(ledger_keys(system), 0.0))


def advance(
    state: ChipState, dt: float | Value, params: ParamInput = None, *, rtol: float = 1e-8, atol: float = 1e-10
) -> ChipState:
    """The chip ``dt`` hours later (a pint quantity is converted), with no event in between."""
    dt_h = to_unit(dt, "h", what="dt")
    if dt_h < 0:
        raise InvalidValueError(f"dt is {dt_h:g} h; a chip can only be advanced forward in time")
    if dt_h == 0:
        return state
    system = state.system
    p, c = parameter_vector(system, params)[None], state.constants[None]

    def fun(t: float, y: np.ndarray) -> np.ndarray:
        return system.rhs(y[None], p, c)[0]

    def jac(t: float, y: np.ndarray) -> np.ndarray:
        return system.jac(y[None], p, c)[0]

    integrate = scipy_integrator(fun, jac, Tolerances(rtol, atol))
    x_end, _ = integrate(state.time_h, state.time_h + dt_h, state.x, np.empty(0))
    return replace(state, time_h=state.time_h + dt_h, x=x_end)


def apply_event(state: ChipState, event: Event) -> ChipState:
    """The chip just after ``event``, which must be due now (event.time_h == state.time_h)."""
    if abs(event.time_h - state.time_h) > EVENT_TIME_SLACK_H * max(1.0, state.time_h):
        raise InvalidValueError(
            f"{type(event).__name__} is for {event.time_h:g} h but the chip is at "
            f"{state.time_h:g} h; advance the chip to the event's time first"
        )
    system = state.system
    validate_schedule([replace(event, time_h=0.0)], system, state.x)  # e.g. a sample larger than the medium
    x, entries = event_jump(state.x, event, system)
    ledger = dict(state.ledger)
    for key, value in entries.items():
        ledger[key] = ledger.get(key, 0.0) + value
    return replace(state, x=x, ledger=ledger)
