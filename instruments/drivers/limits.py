"""Setpoint limits shared by the pump drivers: checked with units before any byte is sent."""

from __future__ import annotations

from dataclasses import dataclass

import pint

from instruments.errors import SetpointOutOfRange


@dataclass(frozen=True)
class ChipLimits:
    """What the chip tolerates, e.g. ``ChipLimits(max_rate=Q_(50, "uL/min"), max_volume=Q_(2, "mL"))``."""

    max_rate: pint.Quantity | None = None
    max_volume: pint.Quantity | None = None


def magnitude(value: pint.Quantity, unit: str, what: str) -> float:
    """``value`` in ``unit``; a wrong dimension or a bare number is a SetpointOutOfRange."""
    try:
        return float(value.to(unit).magnitude)
    except (pint.DimensionalityError, AttributeError):
        raise SetpointOutOfRange(
            f"{what}: {value!r} is not a quantity convertible to {unit}; give it with units, e.g. Q_(1.5, '{unit}')"
        ) from None


def check_range(value: float, low: float, high: float, unit: str, what: str) -> None:
    if not low <= value <= high:
        raise SetpointOutOfRange(f"{what}: {value:.4g} {unit} outside {low:.4g}–{high:.4g} {unit}")


def check_chip(value: float, limit: pint.Quantity | None, unit: str, what: str) -> None:
    if limit is not None and value > magnitude(limit, unit, f"{what} limit"):
        raise SetpointOutOfRange(f"{what}: {value:.4g} {unit} above the chip's limit {limit:~P}")
