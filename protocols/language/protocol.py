"""A whole protocol: header (name, drug, chips, clock-rate hint), interlocks and steps.

Protocol(name="overnight", drug=Drug("acetaminophen", "151.16 g/mol", stock="10 mM"),
         chips=["liver1", "liver2"], interlocks=["pressure > 250 mbar for 10 s -> safe_state, alarm"],
         steps=[Perfuse(flow="5 uL/min", duration="1 h"), Dose(concentration="10 uM"), Wait(duration="2 h")])
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterator

import pint

from protocols.errors import FieldError
from protocols.language.fields import names, normalise, qfield, required_q, text
from protocols.language.interlock import Interlock, parse_interlock
from protocols.language.notify_config import NotifyConfig
from protocols.language.steps import Repeat, Step

Path = tuple[str | int, ...]


MAX_CLOCK_RATE = 86_400.0  # a day a second: faster and the buses cannot keep up with the clock


@dataclass(frozen=True)
class Drug:
    """The drug dosed: its molar mass and the concentration of the stock in the syringe."""

    name: str = text(example="'acetaminophen'")
    molecular_weight: pint.Quantity = required_q("molar_mass", "'151.16 g/mol'")
    stock: pint.Quantity | None = qfield("concentration", example="'10 mM'")

    def __post_init__(self) -> None:
        normalise(self, "drug")


@dataclass(frozen=True)
class Header:
    """The ``[protocol]`` table: a name, the chips used, an optional clock-rate hint."""

    name: str = text(example="'closed loop liver'")
    chips: tuple[str, ...] = names(example="['liver1', 'liver2']")
    clock_rate: float | None = None
    description: str = ""


@dataclass(frozen=True)
class Protocol:
    name: str
    drug: Drug
    chips: tuple[str, ...]
    steps: tuple[Step, ...]
    interlocks: tuple[Interlock, ...] = ()
    clock_rate: float | None = None
    description: str = ""
    lines: dict[Path, int] = dataclasses.field(default_factory=dict, compare=False, repr=False)
    notify: NotifyConfig | None = None  # the optional [notify] table (protocols.language.notify_config)

    def __post_init__(self) -> None:
        object.__setattr__(self, "chips", (self.chips,) if isinstance(self.chips, str) else tuple(self.chips))
        object.__setattr__(self, "steps", tuple(self.steps))
        object.__setattr__(
            self, "interlocks", tuple(parse_interlock(i) if isinstance(i, str) else i for i in self.interlocks)
        )
        rate = self.clock_rate
        if rate is not None and (
            isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= MAX_CLOCK_RATE
        ):
            raise FieldError(
                f"protocol clock_rate {self.clock_rate!r} is not a positive number",
                f"write a number up to {MAX_CLOCK_RATE:g}, e.g. clock_rate = 3600 (an hour a second), or leave it out",
            )

    def line(self, path: Path) -> int:
        """The source line of ``path`` (or its nearest enclosing path); 0 for Python-built protocols."""
        for end in range(len(path), 0, -1):
            if (found := self.lines.get(tuple(path[:end]))) is not None:
                return found
        return 0

    def walk(self) -> Iterator[tuple[Path, Step]]:
        """Every step with its path (``("steps", 2, "steps", 0)``), repeats' bodies included."""
        yield from walk_steps(self.steps, ("steps",))


def walk_steps(steps: tuple[Step, ...], prefix: Path) -> Iterator[tuple[Path, Step]]:
    for index, step in enumerate(steps):
        path = prefix + (index,)
        yield path, step
        if isinstance(step, Repeat):
            yield from walk_steps(step.steps, path + ("steps",))
