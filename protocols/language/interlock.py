"""Interlocks and conditions on channels: ``pressure > 250 mbar for 10 s -> safe_state, alarm``.

Grammar (one line)::

    condition  :=  CHANNEL OP THRESHOLD [for DURATION]
    interlock  :=  condition (-> | →) ACTION [, ACTION ...]
    OP         :=  >  >=  <  <=
    ACTION     :=  safe_state | alarm | pause | abort

THRESHOLD and DURATION are quantities with units (``250 mbar``, ``20 %``, ``30 min``).
A condition without ``for`` holds as soon as one reading crosses the threshold.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Callable

import pint

from protocols.errors import FieldError
from protocols.language.quantities import magnitude, quantity
from twin.units import BIG_EXPONENT, MAX_QUANTITY_TEXT, Q_

ACTIONS = ("safe_state", "alarm", "pause", "abort")
STOPPING_ACTIONS = frozenset({"safe_state", "pause", "abort"})
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}

_CONDITION = re.compile(
    r"^\s*(?P<channel>[A-Za-z_][\w.\-]*)\s*(?P<op>>=|<=|>|<)\s*(?P<threshold>.+?)"
    r"(?:\s+for\s+(?P<duration>.+?))?\s*$"
)
_EXAMPLE = "pressure > 250 mbar for 10 s -> safe_state, alarm"


@dataclass(frozen=True)
class Condition:
    """``channel op threshold`` held for ``for_s`` seconds (0: a single reading is enough)."""

    channel: str
    op: str
    threshold: pint.Quantity
    for_s: float = 0.0

    def holds(self, value: float, unit: str) -> bool:
        """Whether one reading ``value`` (in ``unit``) crosses the threshold."""
        return OPERATORS[self.op](value, float(self.threshold.to(unit).magnitude))

    def __str__(self) -> str:
        text = f"{self.channel} {self.op} {self.threshold:~g}"
        return text + (f" for {self.for_s:g} s" if self.for_s else "")


@dataclass(frozen=True)
class Interlock(Condition):
    """A condition and what the runner does when it holds."""

    actions: tuple[str, ...] = ("safe_state", "alarm")

    @property
    def stops(self) -> bool:
        """Whether the interlock stops the run (safe state, pause or abort), not only alarms."""
        return bool(STOPPING_ACTIONS.intersection(self.actions))

    def __str__(self) -> str:
        return f"{Condition.__str__(self)} -> {', '.join(self.actions)}"


def _threshold(text: str, what: str) -> pint.Quantity:
    """Any quantity with a unit; whether it fits the channel's unit is checked against the rig."""
    if len(text) > MAX_QUANTITY_TEXT or BIG_EXPONENT.search(text):  # pint would compute 9**9**9 for ever
        raise FieldError(f"{what} {text[:40]!r} is not a quantity", "write a number and a unit, like '250 mbar'")
    try:
        value = Q_(text.strip().replace("µ", "u").replace("μ", "u"))
    except Exception:  # pint raises several unrelated types for garbage
        raise FieldError(f"{what} {text!r} is not a quantity", "write a number and a unit, like '250 mbar'") from None
    if not isinstance(value, pint.Quantity) or str(value.units) == "dimensionless":
        raise FieldError(f"{what} {text.strip()!r} has no unit", f"write '{text.strip()} mbar' (or the channel's unit)")
    if not math.isfinite(float(value.magnitude)):
        # NaN compares false with everything and ±inf is never crossed: the rule could never trip
        raise FieldError(
            f"{what} {text.strip()!r} is not a finite number, so the rule could never hold",
            "write a real threshold, like '250 mbar'",
        )
    return value


def parse_condition(text: str, what: str = "condition") -> Condition:
    """``"oxygen < 20 % for 30 min"`` → Condition."""
    if not isinstance(text, str):
        raise FieldError(f"{what} is {text!r}, not text", "write it like 'oxygen > 80 % for 10 min'")
    match = _CONDITION.match(text)
    if not match:
        raise FieldError(
            f"{what} {text!r} does not read as CHANNEL OP THRESHOLD [for DURATION]",
            "write it like 'oxygen > 80 % for 10 min'",
        )
    duration = match["duration"]
    for_s = magnitude(quantity(duration, "time", f"{what} duration"), "time") * 3600.0 if duration else 0.0
    if not (math.isfinite(for_s) and for_s >= 0.0):
        raise FieldError(
            f"{what} duration {duration!r} is not a finite, non-negative time, so the rule could never hold",
            "write a duration like '10 s' or '30 min'",
        )
    return Condition(match["channel"], match["op"], _threshold(match["threshold"], f"{what} threshold"), for_s)


def parse_interlock(text: str) -> Interlock:
    """``"pressure > 250 mbar for 10 s -> safe_state, alarm"`` → Interlock."""
    if not isinstance(text, str):
        raise FieldError(f"interlock {text!r} is not text", f"write it like '{_EXAMPLE}'")
    parts = re.split(r"->|→", text)
    if len(parts) != 2:
        raise FieldError(
            f"interlock {text!r} needs one '->' between the condition and the actions", f"write it like '{_EXAMPLE}'"
        )
    condition = parse_condition(parts[0], "interlock")
    actions = tuple(a.strip() for a in parts[1].split(",") if a.strip())
    unknown = [a for a in actions if a not in ACTIONS]
    if not actions or unknown:
        raise FieldError(
            f"interlock {text!r} has unknown action(s) {', '.join(unknown) or '(none)'}",
            f"use one or more of {', '.join(ACTIONS)}",
        )
    return Interlock(condition.channel, condition.op, condition.threshold, condition.for_s, actions)
