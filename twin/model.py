"""What a model of the twin is: named states, parameters, constants and observables, with units.

A ``ModelSpec`` is data. Its ``odes``/``assignments``/``observables`` are infix formulas in
SBML Level 3 syntax (``libsbml.parseL3Formula`` reads them), which is the contract form
shared by the documentation, the SBML export and any independent re-implementation. The
fast numerical right-hand sides live beside each model and are checked against this form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from twin.errors import UnknownParameterError


@dataclass(frozen=True)
class Parameter:
    """An estimable parameter: positive, estimated on the natural-log scale (MODELS.md)."""

    name: str
    unit: str
    default: float
    lower: float
    upper: float
    description: str


@dataclass(frozen=True)
class Constant:
    """A device or dosing constant that is given, not estimated (e.g. medium volume)."""

    name: str
    unit: str
    default: float
    description: str


@dataclass(frozen=True)
class State:
    """A state variable; ``initial`` is an infix formula over parameters and constants."""

    name: str
    unit: str
    description: str
    initial: str = "0"


@dataclass(frozen=True)
class Observable:
    """Something that can be measured, as an infix formula over states and parameters."""

    name: str
    unit: str
    expression: str
    description: str


@dataclass(frozen=True)
class ModelSpec:
    """One model of the catalogue (MODELS.md is the contract for its equations)."""

    name: str
    version: str
    description: str
    states: tuple[State, ...]
    parameters: tuple[Parameter, ...]
    observables: tuple[Observable, ...]
    odes: Mapping[str, str]
    constants: tuple[Constant, ...] = ()
    assignments: Mapping[str, str] = field(default_factory=dict)
    linear: bool = False
    time_unit: str = "h"

    def parameter(self, name: str) -> Parameter:
        for parameter in self.parameters:
            if parameter.name == name:
                return parameter
        known = ", ".join(p.name for p in self.parameters)
        raise UnknownParameterError(f"model {self.name!r} has no parameter {name!r}; its parameters are: {known}")

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.states)

    def defaults(self) -> dict[str, float]:
        """Default parameter and constant values, by name."""
        values = {p.name: p.default for p in self.parameters}
        values.update({c.name: c.default for c in self.constants})
        return values
