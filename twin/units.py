"""One pint registry for the whole program, and conversion to the twin's canonical units.

Every package uses pint's application registry, so quantities made anywhere (the store,
the instruments, the twin) can be compared and converted without sharing imports.
"""

from __future__ import annotations

import math

import pint

from twin.errors import InvalidValueError, UnitError

ureg = pint.get_application_registry()
Q_ = ureg.Quantity


def to_unit(value: pint.Quantity | str | float, unit: str, *, what: str = "value") -> float:
    """Return ``value`` as a bare float in ``unit``.

    ``value`` may be a pint Quantity, a string such as ``"1.5 mL/h"`` or a bare number
    (taken to be in ``unit`` already). Raises UnitError naming ``what`` when the unit
    does not convert, and InvalidValueError when the number is not finite.
    """
    try:
        quantity = Q_(value) if isinstance(value, str) else value
        if isinstance(quantity, pint.Quantity):
            magnitude = float(quantity.to(unit).magnitude)
        else:
            magnitude = float(quantity)
    except pint.DimensionalityError as exc:
        raise UnitError(
            f"{what}: {value!r} does not convert to {unit} ({exc.dim1} vs {exc.dim2}); "
            f"give it in a unit of the same kind as {unit}"
        ) from None
    except (pint.UndefinedUnitError, pint.errors.DefinitionSyntaxError, ValueError, TypeError):
        raise UnitError(f"{what}: cannot read {value!r} as a quantity; write it like '1.5 {unit}'") from None
    if not math.isfinite(magnitude):
        raise InvalidValueError(f"{what}: {value!r} is not a finite number")
    return magnitude
