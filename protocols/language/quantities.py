"""Quantities in protocols: every number that has a unit must say it (pint, one registry).

``quantity("10 uM", "concentration", "dose concentration")`` returns a pint Quantity;
a bare number, an unknown unit or a unit of the wrong kind raises ``FieldError`` with a
message that says what to write instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pint

from protocols.errors import FieldError
from twin.units import BIG_EXPONENT, MAX_QUANTITY_TEXT, PINT_PARSE_ERRORS, Q_, ureg


@dataclass(frozen=True)
class Kind:
    """A kind of quantity: its canonical unit, how to call it, an example to suggest."""

    unit: str
    word: str
    example_unit: str


KINDS: dict[str, Kind] = {
    "concentration": Kind("uM", "a concentration", "uM"),
    "amount": Kind("nmol", "an amount of substance", "nmol"),
    "volume": Kind("mL", "a volume", "uL"),
    "flow": Kind("mL/h", "a flow", "uL/min"),
    "time": Kind("h", "a duration", "h"),
    "pressure": Kind("mbar", "a pressure", "mbar"),
    "molar_mass": Kind("g/mol", "a molar mass", "g/mol"),
    "fraction": Kind("percent", "a fraction", "%"),
    "temperature": Kind("degC", "a temperature", "degC"),
}


# The largest value a protocol may state, in the kind's canonical unit: beyond these a number
# is a typo (and would make the dry run's grid or the runner's waits absurd), not a plan.
LARGEST: dict[str, tuple[float, str]] = {
    "time": (8760.0, "a year"),
    "volume": (1000.0, "a litre"),
    "flow": (60_000.0, "a litre a minute"),
    "concentration": (1e6, "1 M"),
    "amount": (1e9, "1 mol"),
}


def kind_of_unit(unit: str) -> str | None:
    """The kind a unit belongs to (``"mbar"`` → ``"pressure"``), None when no kind fits."""
    try:
        dims = ureg.parse_units(unit).dimensionality
    except (pint.UndefinedUnitError, pint.errors.DefinitionSyntaxError, ValueError, AttributeError):
        return None
    for name, kind in KINDS.items():
        if ureg.parse_units(kind.unit).dimensionality == dims:
            return name
    return None


def _describe(quantity: pint.Quantity) -> str:
    if quantity.dimensionless and str(quantity.units) == "dimensionless":
        return "a plain number"
    kind = kind_of_unit(str(quantity.units))
    return KINDS[kind].word if kind else f"in {quantity.units:~}"


def _parse(value: object, kind: Kind, what: str) -> pint.Quantity:
    if isinstance(value, bool) or value is None:
        raise FieldError(f"{what} is {value!r}, not {kind.word}", f"write it like '10 {kind.example_unit}'")
    if isinstance(value, (int, float)):
        raise FieldError(f"{what} {value:g} has no unit", f"write '{value:g} {kind.example_unit}'")
    if isinstance(value, pint.Quantity):
        return value
    if not isinstance(value, str):
        raise FieldError(
            f"{what} is {type(value).__name__} {value!r}, not {kind.word}",
            f"write it as a string like '10 {kind.example_unit}'",
        )
    if len(value) > MAX_QUANTITY_TEXT or BIG_EXPONENT.search(value):  # pint would compute 9**9**9 for ever
        raise FieldError(
            f"{what} {value[:40]!r} is not a quantity a protocol states",
            f"write a number and a unit, like '10 {kind.example_unit}'",
        )
    try:
        parsed = Q_(value.replace("µ", "u").replace("μ", "u"))
    except PINT_PARSE_ERRORS:
        raise FieldError(
            f"{what} {value!r} is not a quantity pint can read",
            f"write a number and a unit, like '10 {kind.example_unit}'",
        ) from None
    if not isinstance(parsed, pint.Quantity):
        parsed = Q_(float(parsed), "dimensionless")
    if str(parsed.units) == "dimensionless":
        raise FieldError(f"{what} {value!r} has no unit", f"write '{value.strip()} {kind.example_unit}'")
    return parsed


def quantity(value: object, kind_name: str, what: str, *, allow_negative: bool = False) -> pint.Quantity:
    """``value`` (a string like ``"10 uM"`` or a pint Quantity) as a Quantity of ``kind_name``."""
    kind = KINDS[kind_name]
    parsed = _parse(value, kind, what)
    if parsed.dimensionality != ureg.parse_units(kind.unit).dimensionality:
        raise FieldError(
            f"{what} '{value!s}' is {_describe(parsed)}, not {kind.word}",
            f"give {kind.word} like '10 {kind.example_unit}'",
        )
    magnitude = float(parsed.magnitude)
    if not math.isfinite(magnitude):
        raise FieldError(
            f"{what} '{value!s}' is not a finite number", f"write {kind.word} like '10 {kind.example_unit}'"
        )
    if magnitude < 0 and not allow_negative:
        raise FieldError(f"{what} '{value!s}' is negative", f"give a zero or positive {kind.word}")
    if kind_name in LARGEST:
        largest, words = LARGEST[kind_name]
        if abs(float(parsed.to(kind.unit).magnitude)) > largest:
            raise FieldError(
                f"{what} '{value!s}' is more than {words} ({largest:g} {kind.unit})",
                f"give a realistic {kind.word.removeprefix('a ').removeprefix('an ')}, like '10 {kind.example_unit}'",
            )
    return parsed


def magnitude(value: pint.Quantity, kind_name: str) -> float:
    """A quantity as a bare float in its kind's canonical unit (uM, nmol, mL, mL/h, h, ...)."""
    return float(value.to(KINDS[kind_name].unit).magnitude)


def quantity_in_unit(value: object, unit: str, what: str) -> pint.Quantity:
    """``value`` as a quantity of the same kind as ``unit`` (e.g. a channel's unit)."""
    kind_name = kind_of_unit(unit)
    if kind_name is not None:
        return quantity(value, kind_name, what, allow_negative=True)
    kind = Kind(unit, f"a quantity in {unit}", unit)
    parsed = _parse(value, kind, what)
    if parsed.dimensionality != ureg.parse_units(unit).dimensionality:
        raise FieldError(f"{what} '{value!s}' does not convert to {unit}", f"give it in {unit}")
    return parsed
