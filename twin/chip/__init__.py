"""Organ-chip models of the twin (MODELS.md §2): liver chip and body-on-chip.

Public API:

- ``simulate_chip(params, events, times, constants=None, observables=None)`` — one chip;
- ``simulate_chips([ChipRun(params, events, constants), ...], times)`` — many chips at once;
- ``sensitivities(params, events, times, ...)`` — ∂observables/∂log-parameters;
- ``initial_state`` / ``advance`` / ``apply_event`` on a ``ChipState`` — step a chip live;
- events ``Dose``, ``Sample``, ``MediaChange``; ``multi_organ_spec(modules)``.
"""

from twin.chip.api import ChipRun, Sensitivities, sensitivities, simulate_chip, simulate_chips
from twin.chip.events import Dose, Event, MediaChange, Sample
from twin.chip.multi_organ import multi_organ_spec
from twin.chip.stepper import ChipState, advance, apply_event, initial_state

__all__ = [
    "ChipRun",
    "ChipState",
    "Dose",
    "Event",
    "MediaChange",
    "Sample",
    "Sensitivities",
    "advance",
    "apply_event",
    "initial_state",
    "multi_organ_spec",
    "sensitivities",
    "simulate_chip",
    "simulate_chips",
]
