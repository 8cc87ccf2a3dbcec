"""One pint registry for the whole program, and conversion to the twin's canonical units.

Every package uses pint's application registry, so quantities made anywhere (the store,
the instruments, the twin) can be compared and converted without sharing imports.
"""

from __future__ import annotations

import math
import re
import tokenize

import pint

from twin.errors import InvalidValueError, UnitError


def _registry_with_disk_cache() -> pint.UnitRegistry | None:
    """pint's registry, its unit definitions read from pint's disk cache (~/.cache/pint).

    Parsing pint's definitions file costs ~0.3 s of CPU in every process, and every chiptwin
    command, runner and supervisor pays it at start-up; the cached parse costs ~0.05 s. pint
    writes the cache without a lock, so a process that meets a half-written file (many
    starting at once on a fresh machine) or an unwritable cache folder parses the file
    itself, as it would without the cache.
    """
    try:
        return pint.UnitRegistry(cache_folder=":auto:")
    except Exception:  # noqa: BLE001 (any failure of the cache means: no cache)
        return None


_cached = _registry_with_disk_cache()
if _cached is not None:
    pint.set_application_registry(_cached)
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


# -- quantities a user typed (rig, patient, design-space files) ------------------------------
# A plain number, then a unit expression. The number is read by float(), never by pint's
# evaluator: "9**9**9 mL" would make pint compute a 370-million-digit integer (a hang).
_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:nan|inf|infinity)"
_UNIT_TEXT = r"[A-Za-zµμΩ°%_/][A-Za-z0-9µμΩ°%_\s*/()^.·-]*"
_QUANTITY_TEXT = re.compile(rf"^\s*(?P<number>{_NUMBER})\s*(?P<unit>{_UNIT_TEXT})?\s*$", re.IGNORECASE)
# an exponent of three digits, or a chain of exponents (9**9**9 is 9**387420489): pint would compute it for ever
BIG_EXPONENT = re.compile(r"(\*\*|\^)\s*[+-]?\(?\s*(\d{3,}|[\d.]+\s*\)?\s*(\*\*|\^))")
# pint reports a bad unit expression through many exception types (its own, and whatever its
# tokenizer and evaluator raise); a user's text must never escape as any of them.
PINT_PARSE_ERRORS = (
    pint.errors.PintError,
    AssertionError,
    ValueError,
    TypeError,
    AttributeError,
    KeyError,
    ZeroDivisionError,
    OverflowError,
    SyntaxError,
    IndexError,
    tokenize.TokenError,
)
MAX_QUANTITY_TEXT = 100


def parse_unit(text: str, *, what: str = "unit") -> pint.Unit:
    """``text`` as a pint unit; UnitError naming ``what`` when pint cannot read it."""
    if not isinstance(text, str) or not text.strip():
        raise UnitError(f"{what}: {text!r} is not a unit; write e.g. 'uL/min', 'kPa', 'percent' or 'dimensionless'")
    if len(text) > MAX_QUANTITY_TEXT or BIG_EXPONENT.search(text):
        raise UnitError(f"{what}: {text[:40]!r}… is not a unit a device reports; write e.g. 'uL/min'")
    try:
        unit = ureg.parse_units(text.strip())
        factor = float(ureg.Quantity(1.0, unit).to_base_units().magnitude)
    except PINT_PARSE_ERRORS:
        raise UnitError(
            f"{what}: {text!r} is not a unit pint understands; write e.g. 'uL/min', 'kPa', 'degC'"
        ) from None
    if not math.isfinite(factor) or factor == 0:
        raise UnitError(f"{what}: {text!r} is not a usable unit; write e.g. 'uL/min', 'kPa', 'degC'")
    return unit


def parse_quantity(
    value: object, dimension: str | None = None, *, what: str = "value", example: str = "1.5 mL"
) -> pint.Quantity:
    """A finite quantity of ``dimension`` (e.g. ``"[volume] / [time]"``) from a user's text.

    Raises UnitError (no number, no unit, an unknown unit, the wrong kind of unit) or
    InvalidValueError (NaN, infinite), each naming ``what`` and an accepted example.
    """
    if isinstance(value, bool) or not isinstance(value, str):
        raise UnitError(f"{what}: {value!r} has no unit; write a number and a unit as text, e.g. {example!r}")
    match = _QUANTITY_TEXT.match(value) if len(value) <= MAX_QUANTITY_TEXT else None
    if match is None or not match.group("unit"):
        raise UnitError(f"{what}: cannot read {value[:60]!r} as a number and a unit; write e.g. {example!r}")
    number = float(match.group("number"))
    if not math.isfinite(number):
        raise InvalidValueError(f"{what}: {value!r} is not a finite number; write e.g. {example!r}")
    quantity = ureg.Quantity(number, parse_unit(match.group("unit"), what=what))
    if dimension is not None and not quantity.check(dimension):
        raise UnitError(f"{what}: {value!r} is not a {dimension} quantity; write e.g. {example!r}")
    return quantity
