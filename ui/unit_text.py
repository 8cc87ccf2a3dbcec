"""Units as a person reads them: the one place that turns a stored unit string into display text.

``pretty_unit("ohm * cm ** 2")`` is "Ω·cm²", ``pretty_unit("uM")`` is "µM". pint names the symbols;
the factors keep the order they were written in (pint's own pretty format sorts them
alphabetically, "cm²·Ω", which no lab writes), and litres are "L", as labs write them.
"""

from __future__ import annotations

import functools
import math

from twin.units import PINT_PARSE_ERRORS, ureg

DIMENSIONLESS = "1"  # SI's unit of a ratio; a bare number would hide that it was checked
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
_SYMBOL_FIXES = {"l": "L", "ml": "mL", "µl": "µL", "ul": "µL", "nl": "nL"}


@functools.lru_cache(maxsize=512)
def pretty_unit(unit: str | None) -> str:
    """Display text of a unit; text pint cannot read (e.g. "cells") comes back as written."""
    text = (unit or "").strip()
    if text in ("", "1", "dimensionless"):
        return DIMENSIONLESS
    try:
        factors = ureg.Unit(text)._units
    except PINT_PARSE_ERRORS:
        return text
    if not factors:
        return DIMENSIONLESS
    above = [_factor(name, power) for name, power in factors.items() if power > 0]
    below = [_factor(name, -power) for name, power in factors.items() if power < 0]
    head = "·".join(above) or "1"
    if not below:
        return head
    return f"{head}/{below[0]}" if len(below) == 1 else f"{head}/({'·'.join(below)})"


def _factor(name: str, power: float) -> str:
    symbol = ureg.get_symbol(name)
    symbol = _SYMBOL_FIXES.get(symbol, symbol)
    if power == 1:
        return symbol
    if float(power).is_integer():
        return symbol + str(int(power)).translate(_SUPERSCRIPT)
    return f"{symbol}^{power:g}"


def label(name: str, unit: str | None) -> str:
    """An axis or column label: "km (µM)"."""
    return f"{name} ({pretty_unit(unit)})"


def quantity(value: float | None, unit: str | None, digits: int = 4) -> str:
    """A number with its unit, "12.3 µM"; "—" where there is no number."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    shown = pretty_unit(unit)
    return f"{value:.{digits}g}" if shown == DIMENSIONLESS else f"{value:.{digits}g} {shown}"
