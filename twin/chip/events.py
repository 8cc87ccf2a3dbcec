"""Chip events — dose, sample, media change — exact in time, validated up front.

Events are applied at their exact time as integration boundaries; the state reported at an
event's time is the state *after* every event at that time (right-continuous), and events
at the same time act in the order given. Each event keeps a ledger of what it put in and
took out, so the drug mass balance can be closed exactly.

Fields are canonical floats; pint quantities (or strings like ``"10 nmol"``) given at
construction are converted with ``twin.units.to_unit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np

from twin.chip.system import ChipSystem, Medium
from twin.errors import InvalidValueError
from twin.units import to_unit

ADDED = "drug_added_nmol"


def _set(event: object, name: str, unit: str, *, positive: bool = False) -> None:
    """Convert field ``name`` to a float in ``unit`` and check its sign."""
    value = to_unit(getattr(event, name), unit, what=f"{type(event).__name__}.{name}")
    if value < 0 or (positive and value == 0):
        need = "positive" if positive else "zero or positive"
        raise InvalidValueError(f"{type(event).__name__}.{name} is {value:g} {unit}; it must be {need}")
    object.__setattr__(event, name, value)


@dataclass(frozen=True)
class Dose:
    """Add ``amount_nmol`` of drug in ``volume_ml`` of liquid to a medium."""

    time_h: float
    amount_nmol: float
    volume_ml: float = 0.0
    medium: str = "medium"

    def __post_init__(self) -> None:
        _set(self, "time_h", "h")
        _set(self, "amount_nmol", "nmol")
        _set(self, "volume_ml", "mL")


@dataclass(frozen=True)
class Sample:
    """Remove ``volume_ml`` of a medium (every solute leaves in proportion)."""

    time_h: float
    volume_ml: float
    medium: str = "medium"

    def __post_init__(self) -> None:
        _set(self, "time_h", "h")
        _set(self, "volume_ml", "mL")


@dataclass(frozen=True)
class MediaChange:
    """Replace a medium by ``volume_ml`` of fresh medium holding ``concentration_um`` of drug."""

    time_h: float
    volume_ml: float
    concentration_um: float = 0.0
    medium: str = "medium"

    def __post_init__(self) -> None:
        _set(self, "time_h", "h")
        _set(self, "volume_ml", "mL", positive=True)
        _set(self, "concentration_um", "uM")


Event = Union[Dose, Sample, MediaChange]


def removed_key(solute: str) -> str:
    return f"removed_{solute}_nmol"


def ledger_keys(system: ChipSystem) -> tuple[str, ...]:
    solutes = sorted({s for m in system.media.values() for s in m.solutes})
    return (ADDED, *(removed_key(s) for s in solutes))


def _medium(system: ChipSystem, event: Event) -> Medium:
    try:
        return system.media[event.medium]
    except KeyError:
        known = ", ".join(system.media)
        raise InvalidValueError(
            f"{type(event).__name__} at {event.time_h:g} h targets medium {event.medium!r}; "
            f"model {system.spec.name!r} has: {known}"
        ) from None


def event_jump(x: np.ndarray, event: Event, system: ChipSystem) -> tuple[np.ndarray, dict[str, float]]:
    """State after ``event`` (a new array) and the ledger entries it makes."""
    medium = _medium(system, event)
    index = system.state_index
    x = np.array(x, dtype=float)
    amount, volume = index[medium.amount], index[medium.volume]
    ledger: dict[str, float] = {}
    if isinstance(event, Dose):
        x[amount] += event.amount_nmol
        x[volume] += event.volume_ml
        ledger[ADDED] = event.amount_nmol
    elif isinstance(event, Sample):
        kept = 1.0 - event.volume_ml / x[volume]
        for solute in medium.solutes:
            ledger[removed_key(solute)] = x[index[solute]] * (1.0 - kept)
            x[index[solute]] *= kept
        x[volume] -= event.volume_ml
    else:
        for solute in medium.solutes:
            ledger[removed_key(solute)] = x[index[solute]]
            x[index[solute]] = 0.0
        x[amount] = event.concentration_um * event.volume_ml
        x[volume] = event.volume_ml
        ledger[ADDED] = x[amount]
    return x, ledger


def sensitivity_jump(s: np.ndarray, x_before: np.ndarray, event: Event, system: ChipSystem) -> np.ndarray:
    """∂x/∂θ after ``event`` from ∂x/∂θ before it (s is (n_states, n_params)).

    Event times and sizes do not depend on the parameters, and volumes have zero
    sensitivity, so a dose leaves s unchanged, a sample scales the solute rows and a
    media change zeroes them.
    """
    medium = _medium(system, event)
    index = system.state_index
    s = s.copy()
    rows = [index[solute] for solute in medium.solutes]
    if isinstance(event, Sample):
        s[rows] *= 1.0 - event.volume_ml / x_before[index[medium.volume]]
    elif isinstance(event, MediaChange):
        s[rows] = 0.0
    return s


def validate_schedule(events: Sequence[Event], system: ChipSystem, x0: np.ndarray) -> tuple[Event, ...]:
    """Check the schedule against the chip it will run on; return it as a tuple.

    Raises InvalidValueError when events are out of time order, target an unknown medium,
    or a sample would take as much medium as there is (volumes change only by events, so
    this is known before integrating).
    """
    events = tuple(events)
    index = system.state_index
    volumes = {name: float(x0[index[m.volume]]) for name, m in system.media.items()}
    last = 0.0
    for k, event in enumerate(events):
        if not isinstance(event, (Dose, Sample, MediaChange)):
            raise InvalidValueError(f"event {k} is a {type(event).__name__}; use Dose, Sample or MediaChange")
        if event.time_h < last:
            raise InvalidValueError(
                f"event {k} ({type(event).__name__} at {event.time_h:g} h) comes after one at {last:g} h; "
                "list events in time order"
            )
        last = event.time_h
        medium = _medium(system, event)
        if isinstance(event, Dose):
            volumes[event.medium] += event.volume_ml
        elif isinstance(event, MediaChange):
            volumes[event.medium] = event.volume_ml
        elif event.volume_ml >= volumes[event.medium]:
            raise InvalidValueError(
                f"Sample at {event.time_h:g} h takes {event.volume_ml:g} mL but the {event.medium} holds only "
                f"{volumes[event.medium]:g} mL ({medium.volume}) then; take a smaller sample or add medium first"
            )
        else:
            volumes[event.medium] -= event.volume_ml
    return events
