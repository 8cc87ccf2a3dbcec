"""The design space of the experiment designer: what could be done next, and what may not.

A candidate experiment is one dose into fresh medium at t = 0 on one free chip, then a
schedule of medium samples (each removes ``sample_volume_ml``) measuring the space's
observables. Candidates are the product dose levels × schedules × sample volumes × free
chips, minus those a constraint excludes. SPACE.toml is documented in docs/design-space.md.

``load_space`` refuses, naming the file and the key, anything the designer could not use:
unknown keys, non-finite numbers, duplicate or unsorted sample times, a zero or negative
sample volume, a negative residual error, limits of the wrong kind ("200 kg"), a
``removed_ml`` for a chip that is not free, and more than ``MAX_CANDIDATES`` candidates.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from calibration.design.insilico import CHIP_CONSTANTS, Experiment
from calibration.errors import CalibrationError
from twin.errors import TwinError
from twin.toml_lines import TomlDocument, read_toml
from twin.units import parse_quantity, to_unit
from twin.userfile import read_user_text

KNOWN_OBSERVABLES = ("drug_medium", "metabolite_medium")
DEFAULT_SCHEDULES = {"early": (0.25, 0.5, 1.0, 2.0), "spread": (1.0, 6.0, 24.0, 48.0), "late": (12.0, 24.0, 36.0, 48.0)}


@dataclass(frozen=True)
class Candidate:
    """One experiment the designer may propose."""

    chip: str
    dose_um: float
    schedule: str
    sample_times_h: tuple[float, ...]
    sample_volume_ml: float
    observables: tuple[str, ...]

    @property
    def volume_removed_ml(self) -> float:
        return len(self.sample_times_h) * self.sample_volume_ml

    def experiment(self, constants: Mapping[str, float] | None = None) -> Experiment:
        return Experiment(
            self.dose_um,
            self.sample_times_h,
            self.sample_volume_ml,
            self.observables,
            dict(constants or CHIP_CONSTANTS),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "chip": self.chip,
            "dose_um": self.dose_um,
            "schedule": self.schedule,
            "sample_times_h": list(self.sample_times_h),
            "sample_volume_ml": self.sample_volume_ml,
            "observables": list(self.observables),
        }


@dataclass
class DesignSpace:
    dose_levels_um: tuple[float, ...]
    schedules: dict[str, tuple[float, ...]] = field(default_factory=lambda: dict(DEFAULT_SCHEDULES))
    sample_volumes_ml: tuple[float, ...] = (0.02,)
    chips: tuple[str, ...] = ("chip-1",)
    observables: tuple[str, ...] = ("drug_medium",)
    max_concentration_um: float | None = None  # the dose's medium concentration may not exceed it
    max_volume_removed_ml: float | None = None  # per chip, counting what was already removed
    removed_ml: dict[str, float] = field(default_factory=dict)  # volume already taken from each chip
    constants: dict[str, float] = field(default_factory=lambda: dict(CHIP_CONSTANTS))
    errors: dict[str, dict[str, float]] = field(default_factory=dict)  # observable → {prop_cv, add_sd}

    def __post_init__(self) -> None:
        self.dose_levels_um = tuple(float(d) for d in self.dose_levels_um)
        self.schedules = {name: tuple(sorted(float(t) for t in times)) for name, times in self.schedules.items()}
        self.sample_volumes_ml = tuple(float(v) for v in self.sample_volumes_ml)
        self.chips, self.observables = tuple(self.chips), tuple(self.observables)
        self._validate()

    def _validate(self) -> None:
        self._check_finite()
        for dose in self.dose_levels_um:
            if not dose > 0:
                raise CalibrationError(f"dose level {dose:g} µM: doses must be positive")
        for name, times in self.schedules.items():
            if not times or times[0] <= 0:
                raise CalibrationError(f"schedule {name!r}: give at least one sample time, all after the dose (> 0 h)")
        for volume in self.sample_volumes_ml:
            if not 0 <= volume < self.constants["v_medium_ml"]:
                raise CalibrationError(f"sample volume {volume:g} mL: must be ≥ 0 and below the medium volume")
        unknown = sorted(set(self.observables) - set(KNOWN_OBSERVABLES))
        if unknown or not self.observables:
            raise CalibrationError(
                f"observables {', '.join(unknown) or '(none)'}: the designer samples the "
                f"medium; choose from {', '.join(KNOWN_OBSERVABLES)}"
            )

    def _check_finite(self) -> None:
        numbers = [("dose level", d) for d in self.dose_levels_um]
        numbers += [(f"schedule {name!r} time", t) for name, times in self.schedules.items() for t in times]
        numbers += [("sample volume", v) for v in self.sample_volumes_ml]
        numbers += [(f"removed_ml of {chip!r}", v) for chip, v in self.removed_ml.items()]
        numbers += [
            (name, v)
            for name, v in (
                ("max_concentration_um", self.max_concentration_um),
                ("max_volume_removed_ml", self.max_volume_removed_ml),
            )
            if v is not None
        ]
        for what, value in numbers:
            if not math.isfinite(value):
                raise CalibrationError(f"{what} {value}: must be a finite number")

    def candidates(self) -> list[Candidate]:
        """Every feasible candidate; none feasible → CalibrationError naming the constraint to relax."""
        self._check_nonempty()
        doses = [d for d in self.dose_levels_um if self.max_concentration_um is None or d <= self.max_concentration_um]
        if not doses:
            raise CalibrationError(
                f"no feasible candidate: every dose level ({_levels(self.dose_levels_um)} µM) exceeds "
                f"max_concentration_um = {self.max_concentration_um:g}; add a dose at or below it or raise the maximum"
            )
        out = []
        for chip, dose, (name, times), volume in itertools.product(
            self.chips, doses, self.schedules.items(), self.sample_volumes_ml
        ):
            candidate = Candidate(chip, dose, name, times, volume, self.observables)
            if self._volume_ok(candidate):
                out.append(candidate)
        if not out:
            smallest = min(len(t) for t in self.schedules.values()) * min(self.sample_volumes_ml)
            left = max(self.max_volume_removed_ml - self.removed_ml.get(c, 0.0) for c in self.chips)
            raise CalibrationError(
                f"no feasible candidate: max_volume_removed_ml = {self.max_volume_removed_ml:g} excludes every "
                f"schedule (the smallest removes {smallest:g} mL; at most {max(left, 0):g} mL may still be taken "
                "from any free chip); use smaller sample volumes, fewer samples, a fresh chip, or raise the limit"
            )
        return out

    def _check_nonempty(self) -> None:
        for label, items, what in (
            ("chips", self.chips, "list at least one free chip under [chips] free"),
            ("dose levels", self.dose_levels_um, "give [doses] levels_um"),
            ("schedules", self.schedules, "give at least one schedule under [schedules]"),
            ("sample volumes", self.sample_volumes_ml, "give [samples] volumes_ml"),
        ):
            if not items:
                raise CalibrationError(f"no feasible candidate: the space has no {label}; {what}")

    def _volume_ok(self, candidate: Candidate) -> bool:
        if self.max_volume_removed_ml is None:
            return True
        return (
            self.removed_ml.get(candidate.chip, 0.0) + candidate.volume_removed_ml <= self.max_volume_removed_ml + 1e-12
        )

    def without_chips(self, used: set[str]) -> "DesignSpace":
        """The same space with ``used`` chips no longer free (after their experiment ran)."""
        remaining = tuple(c for c in self.chips if c not in used)
        return DesignSpace(
            self.dose_levels_um,
            self.schedules,
            self.sample_volumes_ml,
            remaining,
            self.observables,
            self.max_concentration_um,
            self.max_volume_removed_ml,
            dict(self.removed_ml),
            dict(self.constants),
            dict(self.errors),
        )


def _levels(values) -> str:
    return ", ".join(f"{v:g}" for v in values)


def load_space(path: str | Path) -> DesignSpace:
    """Read SPACE.toml (docs/design-space.md); not UTF-8, a directory, empty or over 1 MiB is one line."""
    text = read_user_text(path, "design-space file", error=CalibrationError)
    doc = read_toml(text, str(path), error=CalibrationError)
    return space_from_dict(doc.data, str(path), doc)


def space_from_dict(
    document: Mapping[str, Any], where: str = "design space", doc: TomlDocument | None = None
) -> DesignSpace:
    """Validate a design-space document (types, ranges, references, duplicates) and build the space.

    With ``doc`` (the file it came from) every message names the line of the key.
    """

    def at(path: tuple[str | int, ...]) -> str:
        return doc.where(path) if doc is not None else where

    unknown = sorted(map(str, set(document) - set(_SpaceFile.model_fields)))
    if unknown:
        raise CalibrationError(
            f"{at((unknown[0],))}: unknown section {', '.join(map(str, unknown))}; use {', '.join(sorted(_SpaceFile.model_fields))}"
        )
    try:
        spec = _SpaceFile.model_validate(dict(document))
    except pydantic.ValidationError as exc:
        raise CalibrationError(_shape_message(exc, at)) from None
    constants = {**CHIP_CONSTANTS, **spec.chip_constants.model_dump(exclude_none=True)}
    _check_space(spec, constants, at)
    space = DesignSpace(
        dose_levels_um=tuple(spec.doses.levels_um),
        schedules={k: tuple(v) for k, v in spec.schedules.items()} or dict(DEFAULT_SCHEDULES),
        sample_volumes_ml=tuple(spec.samples.volumes_ml),
        chips=tuple(spec.chips.free),
        observables=tuple(spec.observables),
        max_concentration_um=_limit(
            spec.constraints.max_concentration_um,
            "µM",
            "[substance] / [volume]",
            f"{at(('constraints', 'max_concentration_um'))}: constraints.max_concentration_um",
            "200 uM",
        ),
        max_volume_removed_ml=_limit(
            spec.constraints.max_volume_removed_ml,
            "mL",
            "[volume]",
            f"{at(('constraints', 'max_volume_removed_ml'))}: constraints.max_volume_removed_ml",
            "0.1 mL",
        ),
        removed_ml=dict(spec.chips.removed_ml),
        constants=constants,
        errors={k: v.model_dump(exclude_none=True) for k, v in spec.error.items()},
    )
    _check_work(space, at(("doses", "levels_um")))
    return space


# -- the file's shape ----------------------------------------------------------------------------
MAX_DOSE_UM = 1e6  # 1 M in the medium: no drug dissolves that far
MAX_SAMPLE_TIME_H = 24 * 365.0  # a chip lives weeks; a year is already beyond any experiment
MAX_CANDIDATES = 100_000  # ranking costs simulations per candidate design: refuse more than this
MAX_LIST = 1000  # dose levels, samples per schedule, chips, schedules


class _Strict(BaseModel):
    # strict: TOML gives real types; true as a dose or "5" as a volume is a mistake, not a coercion
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


_Name = Annotated[str, Field(min_length=1, max_length=64)]


class _Doses(_Strict):
    levels_um: list[Annotated[float, Field(gt=0, le=MAX_DOSE_UM)]] = Field(min_length=1, max_length=MAX_LIST)


class _Samples(_Strict):
    volumes_ml: list[Annotated[float, Field(gt=0)]] = Field(default=[0.02], min_length=1, max_length=MAX_LIST)


class _Chips(_Strict):
    free: list[_Name] = Field(default=["chip-1"], min_length=1, max_length=MAX_LIST)
    removed_ml: dict[str, Annotated[float, Field(ge=0)]] = {}


class _Constraints(_Strict):
    max_concentration_um: float | str | None = None  # a number (µM) or a quantity, "200 uM"
    max_volume_removed_ml: float | str | None = None  # a number (mL) or a quantity, "0.1 mL"


class _ChipConstants(_Strict):
    v_medium_ml: float | None = Field(default=None, gt=0, le=1000)
    v_cell_ml: float | None = Field(default=None, gt=0, le=1000)
    n_cells_million: float | None = Field(default=None, gt=0, le=1e5)
    kla_per_h: float | None = Field(default=None, gt=0, le=1e4)


class _ResidualError(_Strict):
    prop_cv: float | None = Field(default=None, ge=0, le=10)
    add_sd: float | None = Field(default=None, ge=0)


Observable = Literal["drug_medium", "metabolite_medium"]


class _SpaceFile(_Strict):
    observables: list[Observable] = Field(default=["drug_medium"], min_length=1)
    doses: _Doses
    schedules: dict[_Name, list[Annotated[float, Field(gt=0, le=MAX_SAMPLE_TIME_H)]]] = {}
    samples: _Samples = _Samples()
    chips: _Chips = _Chips()
    constraints: _Constraints = _Constraints()
    chip_constants: _ChipConstants = _ChipConstants()
    error: dict[Observable, _ResidualError] = {}


_ACCEPTED = {
    "greater_than": "a positive number",
    "greater_than_equal": "a number ≥ 0",
    "less_than_equal": "a smaller number",
    "finite_number": "a finite number",
    "float_type": "a number",
    "int_type": "a whole number",
    "string_type": "text",
    "list_type": "a list, e.g. [1, 2, 5]",
    "dict_type": "a table",
    "model_type": "a table",
    "literal_error": "one of drug_medium, metabolite_medium",
    "too_short": "at least one entry",
    "too_long": f"at most {MAX_LIST} entries",
}


def _shape_message(exc: pydantic.ValidationError, at: Callable[[tuple], str]) -> str:
    # a misspelt key also makes the right one "missing": report the unknown key first
    error = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
    where = at(tuple(error["loc"]))
    loc = [str(p) for p in error["loc"] if isinstance(p, (str, int)) and p not in ("float", "str", "int")]
    key = ".".join(loc)
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key {key}; fix: remove it or check its spelling (docs/design-space.md)"
    if error["type"] == "missing":
        return f"{where}: {key} is missing; fix: add it (docs/design-space.md), e.g. [doses] levels_um = [1, 10, 100]"
    got = repr(error.get("input"))
    got = got if len(got) <= 60 else got[:57] + "…"
    accepted = _ACCEPTED.get(error["type"], error["msg"])
    if error["type"] == "less_than_equal":
        accepted = f"at most {error.get('ctx', {}).get('le')}"
    return f"{where}: {key} = {got} is not accepted ({error['msg']}); fix: give {accepted}"


def _check_space(spec: _SpaceFile, constants: dict[str, float], at: Callable[[tuple], str]) -> None:
    """What the types cannot say: duplicates, order, references, volumes against the medium."""
    _unique(spec.doses.levels_um, f"{at(('doses', 'levels_um'))}: doses.levels_um")
    _unique(spec.samples.volumes_ml, f"{at(('samples', 'volumes_ml'))}: samples.volumes_ml")
    _unique(spec.chips.free, f"{at(('chips', 'free'))}: chips.free")
    _unique(spec.observables, f"{at(('observables',))}: observables")
    for name, times in spec.schedules.items():
        where = at(("schedules", name))
        if not times:
            raise CalibrationError(f"{where}: schedules.{name} is empty; fix: give at least one sample time (h)")
        if len(times) > MAX_LIST:
            raise CalibrationError(f"{where}: schedules.{name} has {len(times)} samples; fix: at most {MAX_LIST}")
        for earlier, later in zip(times, times[1:]):
            if not later > earlier:
                word = "twice" if later == earlier else "out of order"
                raise CalibrationError(
                    f"{where}: schedules.{name}: sample time {later:g} h is {word} (after "
                    f"{earlier:g} h); fix: list each time once, in increasing order"
                )
    where = at(("samples", "volumes_ml"))
    for volume in spec.samples.volumes_ml:
        if volume >= constants["v_medium_ml"]:
            raise CalibrationError(
                f"{where}: samples.volumes_ml: {volume:g} mL is not below the medium volume "
                f"{constants['v_medium_ml']:g} mL; fix: give a smaller sample volume"
            )
    for chip in spec.chips.removed_ml:
        where = at(("chips", "removed_ml", chip))
        if chip not in spec.chips.free:
            raise CalibrationError(
                f"{where}: chips.removed_ml names chip {chip!r}, which is not in chips.free "
                f"({', '.join(spec.chips.free)}); fix: use a free chip's name or remove it"
            )


def _unique(items: list, what: str) -> None:
    repeated = sorted({item for item in items if items.count(item) > 1}, key=str)
    if repeated:
        raise CalibrationError(
            f"{what} lists {', '.join(f'{r:g}' if isinstance(r, float) else repr(r) for r in repeated)}"
            " twice; fix: list each once"
        )


def _limit(value: float | str | None, unit: str, dimension: str, what: str, example: str) -> float | None:
    """A positive limit: a bare number is in ``unit``; text must be a quantity of ``dimension``."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = to_unit(parse_quantity(value, dimension, what=what, example=example), unit, what=what)
        except TwinError as exc:
            raise CalibrationError(f"{exc}; fix: write e.g. {example!r} or a bare number in {unit}") from None
    if not value > 0:
        raise CalibrationError(f"{what} = {value:g}: must be positive; fix: give e.g. {example!r} or remove it")
    return float(value)


def _check_work(space: DesignSpace, where: str) -> None:
    n = len(space.chips) * len(space.dose_levels_um) * len(space.schedules) * len(space.sample_volumes_ml)
    if n > MAX_CANDIDATES:
        raise CalibrationError(
            f"{where}: {n:,} candidate experiments (chips × doses × schedules × volumes) is "
            f"above the limit of {MAX_CANDIDATES:,}; fix: fewer dose levels or schedules"
        )


def _table(document: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = document.get(key, {})
    if not isinstance(value, dict):
        raise CalibrationError(f"{where}: {key} must be a table ([{key}])")
    return dict(value)
