"""Parameters and constants at the boundary: names checked, pint quantities converted, signs checked."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pint

from twin.chip.system import ChipSystem
from twin.errors import InvalidValueError, UnknownParameterError
from twin.units import to_unit

Value = float | pint.Quantity | str
ParamInput = Mapping[str, Value] | Sequence[float] | np.ndarray | None


def parameter_vector(system: ChipSystem, params: ParamInput) -> np.ndarray:
    """Parameters in spec order (canonical units); missing names take their defaults.

    ``params`` is a mapping of names to numbers or quantities, or a sequence of numbers in
    the spec's parameter order (as an optimiser hands them over).
    """
    spec = system.spec
    if params is not None and not isinstance(params, Mapping):
        values = np.asarray(params, dtype=float).ravel()
        if values.size != len(spec.parameters):
            raise InvalidValueError(
                f"model {spec.name!r} takes {len(spec.parameters)} parameters "
                f"({', '.join(spec.parameter_names)}); got {values.size} values"
            )
        params = dict(zip(spec.parameter_names, values))
    given = dict(params or {})
    for name in given:
        spec.parameter(name)  # raises UnknownParameterError listing the known names
    vector = np.empty(len(spec.parameters))
    for i, parameter in enumerate(spec.parameters):
        value = to_unit(
            given.get(parameter.name, parameter.default), parameter.unit, what=f"parameter {parameter.name}"
        )
        if value <= 0:
            raise InvalidValueError(
                f"parameter {parameter.name} is {value:g} {parameter.unit}; every parameter "
                "must be positive (parameters are estimated on the log scale)"
            )
        vector[i] = value
    return vector


def constant_vector(system: ChipSystem, constants: Mapping[str, Value] | None) -> np.ndarray:
    """Device constants in spec order (canonical units); missing names take their defaults."""
    spec = system.spec
    known = {c.name: c for c in spec.constants}
    given = dict(constants or {})
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise UnknownParameterError(
            f"model {spec.name!r} has no constant {unknown[0]!r}; its constants are: {', '.join(known)}"
        )
    vector = np.empty(len(known))
    for i, constant in enumerate(spec.constants):
        value = to_unit(given.get(constant.name, constant.default), constant.unit, what=f"constant {constant.name}")
        if value <= 0:
            raise InvalidValueError(f"constant {constant.name} is {value:g} {constant.unit}; it must be positive")
        vector[i] = value
    return vector


def observable_names(system: ChipSystem, observables: Sequence[str] | None) -> tuple[str, ...]:
    known = tuple(o.name for o in system.spec.observables)
    if observables is None:
        return known
    unknown = [name for name in observables if name not in known]
    if unknown:
        raise InvalidValueError(
            f"model {system.spec.name!r} has no observable {unknown[0]!r}; choose from: {', '.join(known)}"
        )
    return tuple(observables)
