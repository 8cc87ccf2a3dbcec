"""Protocol steps as frozen dataclasses — the Python API, and what TOML files become.

Quantities may be given as strings (``"10 uM"``) or pint Quantities; they are converted
(and their units checked) at construction. ``line`` is the step's line in its file (0 when
built in Python); it does not take part in equality.

    Perfuse(flow="5 uL/min", duration="2 h")
    Dose(concentration="10 uM", chips=["liver1"], volume="10 uL")
    Sample(volume="20 uL", assay="lcms", at=["0 h", "2 h"])
    Repeat(count=3, steps=[Calibrate(parameters=["vmax", "km"]), Propose(doses=["5 uM", "50 uM"]), ...])
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Sequence

import pint

from protocols.errors import FieldError
from protocols.language.fields import (
    condition,
    count,
    names,
    normalise,
    qfield,
    qlist,
    required_q,
    schedules_field,
    text,
)
from protocols.language.interlock import Condition
from twin.units import Q_

APPROVAL_POLICIES = ("auto_within_bounds", "manual")
OBJECTIVES = ("information_gain", "d_optimal")
ON_TIMEOUT = ("abort", "safe_state", "continue")


@dataclass(frozen=True)
class Step:
    """Base of every step; ``kind`` is the name used in TOML (``kind = "dose"``)."""

    kind: ClassVar[str] = ""
    line: int = dataclasses.field(default=0, compare=False, repr=False, kw_only=True)

    def __post_init__(self) -> None:
        normalise(self, self.kind)


@dataclass(frozen=True)
class Prime(Step):
    """Fill the lines and chips with medium: ``volume`` at ``flow`` from ``pump``."""

    kind: ClassVar[str] = "prime"
    volume: pint.Quantity | None = qfield("volume", example="'200 uL'")
    flow: pint.Quantity | None = qfield("flow", example="'50 uL/min'")
    pump: str | None = text(None)
    chips: tuple[str, ...] = names()


@dataclass(frozen=True)
class Perfuse(Step):
    """Recirculate medium at ``flow`` for ``duration``."""

    kind: ClassVar[str] = "perfuse"
    flow: pint.Quantity = required_q("flow", "'5 uL/min'")
    duration: pint.Quantity = required_q("time", "'2 h'")
    pump: str | None = text(None)
    chips: tuple[str, ...] = names()


@dataclass(frozen=True)
class Dose(Step):
    """Dose each chip: raise its medium concentration by ``concentration`` or add ``amount``.

    ``volume`` is the liquid added per chip; when absent it is amount / the drug's stock.
    """

    kind: ClassVar[str] = "dose"
    concentration: pint.Quantity | None = qfield("concentration", example="'10 uM'")
    amount: pint.Quantity | None = qfield("amount", example="'10 nmol'")
    volume: pint.Quantity | None = qfield("volume", example="'10 uL'")
    chips: tuple[str, ...] = names()
    pump: str | None = text(None)

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.concentration is None) == (self.amount is None):
            raise FieldError(
                "dose needs exactly one of concentration or amount",
                "write concentration = '10 uM' (in the medium) or amount = '10 nmol'",
            )


@dataclass(frozen=True)
class Sample(Step):
    """Take ``volume`` of medium from each chip at each offset ``at`` from the step's start."""

    kind: ClassVar[str] = "sample"
    volume: pint.Quantity = required_q("volume", "'20 uL'")
    assay: str = text("lcms", example="'lcms'")
    at: tuple[pint.Quantity, ...] = qlist("time", "['0 h', '2 h']")
    chips: tuple[str, ...] = names()

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.at:
            object.__setattr__(self, "at", (Q_(0.0, "h"),))


@dataclass(frozen=True)
class MediaChange(Step):
    """Replace the medium by ``volume`` (default: the chip's medium volume) at ``concentration``."""

    kind: ClassVar[str] = "media_change"
    volume: pint.Quantity | None = qfield("volume", example="'1 mL'")
    concentration: pint.Quantity | None = qfield("concentration", example="'0 uM'")
    chips: tuple[str, ...] = names()


@dataclass(frozen=True)
class Wait(Step):
    kind: ClassVar[str] = "wait"
    duration: pint.Quantity = required_q("time", "'1 h'")


@dataclass(frozen=True)
class HoldUntil(Step):
    """Wait until ``condition`` holds on a channel, at most ``timeout``; then ``on_timeout``."""

    kind: ClassVar[str] = "hold_until"
    condition: Condition = condition()
    timeout: pint.Quantity = required_q("time", "'2 h'")
    on_timeout: str = text("abort", ON_TIMEOUT)


@dataclass(frozen=True)
class Repeat(Step):
    kind: ClassVar[str] = "repeat"
    count: int = count()
    steps: tuple[Step, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "steps", tuple(self.steps))


@dataclass(frozen=True)
class Calibrate(Step):
    """Fit ``model``'s ``parameters`` to the data of the last ``window`` (all data if None)."""

    kind: ClassVar[str] = "calibrate"
    model: str = text("liver_chip")
    parameters: tuple[str, ...] = names(example="['vmax', 'km']")
    window: pint.Quantity | None = qfield("time", example="'24 h'")


@dataclass(frozen=True)
class Propose(Step):
    """Choose the next experiment from a design space: dose levels × sampling schedules × chips."""

    kind: ClassVar[str] = "propose"
    doses: tuple[pint.Quantity, ...] = qlist("concentration", "['5 uM', '20 uM', '50 uM']")
    schedules: tuple[tuple[pint.Quantity, ...], ...] = schedules_field()
    sample_volume: pint.Quantity | None = qfield("volume", example="'20 uL'")
    dose_volume: pint.Quantity | None = qfield("volume", example="'10 uL'")
    chips: tuple[str, ...] = names()
    objective: str = text("information_gain", OBJECTIVES)


@dataclass(frozen=True)
class Approve(Step):
    """Approve the proposal: automatically inside the bounds, else hold until a person does."""

    kind: ClassVar[str] = "approve"
    policy: str = text("auto_within_bounds", APPROVAL_POLICIES)
    max_dose: pint.Quantity | None = qfield("concentration", example="'50 uM'")
    max_sampled_volume_per_chip: pint.Quantity | None = qfield("volume", example="'200 uL'")
    hold_flow: pint.Quantity | None = qfield("flow", example="'5 uL/min'")
    timeout: pint.Quantity | None = qfield("time", example="'12 h'")


@dataclass(frozen=True)
class Execute(Step):
    """Run the approved proposal on its chips."""

    kind: ClassVar[str] = "execute"


STEP_TYPES: dict[str, type[Step]] = {
    cls.kind: cls
    for cls in (
        Prime,
        Perfuse,
        Dose,
        Sample,
        MediaChange,
        Wait,
        HoldUntil,
        Repeat,
        Calibrate,
        Propose,
        Approve,
        Execute,
    )
}


MAX_STEPS = 100_000  # steps after every repeat is unrolled: more is no lab protocol, and would not fit in memory


def expanded_count(steps: Sequence[Step]) -> int:
    """How many steps ``expand`` would give, computed without unrolling anything."""
    return sum(step.count * expanded_count(step.steps) if isinstance(step, Repeat) else 1 for step in steps)


def expand(steps: Sequence[Step]) -> list[Step]:
    """The steps with every repeat unrolled, in execution order (callers check ``expanded_count`` first)."""
    flat: list[Step] = []
    for step in steps:
        if isinstance(step, Repeat):
            for _ in range(step.count):
                flat.extend(expand(step.steps))
        else:
            flat.append(step)
    return flat
