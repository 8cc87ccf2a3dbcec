"""The design space of the experiment designer: what could be done next, and what may not.

A candidate experiment is one dose into fresh medium at t = 0 on one free chip, then a
schedule of medium samples (each removes ``sample_volume_ml``) measuring the space's
observables. Candidates are the product dose levels × schedules × sample volumes × free
chips, minus those a constraint excludes. SPACE.toml is documented in docs/design-space.md.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from calibration.errors import CalibrationError
from calibration.insilico import CHIP_CONSTANTS, Experiment

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
        return Experiment(self.dose_um, self.sample_times_h, self.sample_volume_ml, self.observables,
                          dict(constants or CHIP_CONSTANTS))

    def to_dict(self) -> dict[str, Any]:
        return {"chip": self.chip, "dose_um": self.dose_um, "schedule": self.schedule,
                "sample_times_h": list(self.sample_times_h), "sample_volume_ml": self.sample_volume_ml,
                "observables": list(self.observables)}


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
            raise CalibrationError(f"observables {', '.join(unknown) or '(none)'}: the designer samples the "
                                   f"medium; choose from {', '.join(KNOWN_OBSERVABLES)}")

    def candidates(self) -> list[Candidate]:
        """Every feasible candidate; none feasible → CalibrationError naming the constraint to relax."""
        self._check_nonempty()
        doses = [d for d in self.dose_levels_um if self.max_concentration_um is None or d <= self.max_concentration_um]
        if not doses:
            raise CalibrationError(
                f"no feasible candidate: every dose level ({_levels(self.dose_levels_um)} µM) exceeds "
                f"max_concentration_um = {self.max_concentration_um:g}; add a dose at or below it or raise the maximum")
        out = []
        for chip, dose, (name, times), volume in itertools.product(
                self.chips, doses, self.schedules.items(), self.sample_volumes_ml):
            candidate = Candidate(chip, dose, name, times, volume, self.observables)
            if self._volume_ok(candidate):
                out.append(candidate)
        if not out:
            smallest = min(len(t) for t in self.schedules.values()) * min(self.sample_volumes_ml)
            left = max(self.max_volume_removed_ml - self.removed_ml.get(c, 0.0) for c in self.chips)
            raise CalibrationError(
                f"no feasible candidate: max_volume_removed_ml = {self.max_volume_removed_ml:g} excludes every "
                f"schedule (the smallest removes {smallest:g} mL; at most {max(left, 0):g} mL may still be taken "
                "from any free chip); use smaller sample volumes, fewer samples, a fresh chip, or raise the limit")
        return out

    def _check_nonempty(self) -> None:
        for label, items, what in (("chips", self.chips, "list at least one free chip under [chips] free"),
                                   ("dose levels", self.dose_levels_um, "give [doses] levels_um"),
                                   ("schedules", self.schedules, "give at least one schedule under [schedules]"),
                                   ("sample volumes", self.sample_volumes_ml, "give [samples] volumes_ml")):
            if not items:
                raise CalibrationError(f"no feasible candidate: the space has no {label}; {what}")

    def _volume_ok(self, candidate: Candidate) -> bool:
        if self.max_volume_removed_ml is None:
            return True
        return self.removed_ml.get(candidate.chip, 0.0) + candidate.volume_removed_ml <= self.max_volume_removed_ml + 1e-12

    def without_chips(self, used: set[str]) -> "DesignSpace":
        """The same space with ``used`` chips no longer free (after their experiment ran)."""
        remaining = tuple(c for c in self.chips if c not in used)
        return DesignSpace(self.dose_levels_um, self.schedules, self.sample_volumes_ml, remaining, self.observables,
                           self.max_concentration_um, self.max_volume_removed_ml, dict(self.removed_ml),
                           dict(self.constants), dict(self.errors))


def _levels(values) -> str:
    return ", ".join(f"{v:g}" for v in values)


def load_space(path: str | Path) -> DesignSpace:
    """Read SPACE.toml (docs/design-space.md)."""
    try:
        document = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CalibrationError(f"{path}: no such design-space file") from None
    except tomllib.TOMLDecodeError as exc:
        raise CalibrationError(f"{path}: not valid TOML ({exc})") from None
    return space_from_dict(document, str(path))


def space_from_dict(document: Mapping[str, Any], where: str = "design space") -> DesignSpace:
    allowed = {"observables", "doses", "schedules", "samples", "chips", "constraints", "chip_constants", "error"}
    unknown = sorted(set(document) - allowed)
    if unknown:
        raise CalibrationError(f"{where}: unknown section {', '.join(unknown)}; use {', '.join(sorted(allowed))}")
    doses = _table(document, "doses", where)
    if "levels_um" not in doses:
        raise CalibrationError(f"{where}: [doses] needs levels_um, e.g. levels_um = [1, 10, 100]")
    samples, chips, limits = (_table(document, k, where) for k in ("samples", "chips", "constraints"))
    constants = {**CHIP_CONSTANTS, **_table(document, "chip_constants", where)}
    try:
        return DesignSpace(
            dose_levels_um=tuple(doses["levels_um"]),
            schedules={k: tuple(v) for k, v in _table(document, "schedules", where).items()} or dict(DEFAULT_SCHEDULES),
            sample_volumes_ml=tuple(samples.get("volumes_ml", (0.02,))),
            chips=tuple(chips.get("free", ("chip-1",))),
            observables=tuple(document.get("observables", ("drug_medium",))),
            max_concentration_um=limits.get("max_concentration_um"),
            max_volume_removed_ml=limits.get("max_volume_removed_ml"),
            removed_ml={str(k): float(v) for k, v in chips.get("removed_ml", {}).items()},
            constants={k: float(v) for k, v in constants.items()},
            errors={k: {n: float(x) for n, x in v.items()} for k, v in _table(document, "error", where).items()},
        )
    except (TypeError, ValueError) as exc:
        if isinstance(exc, CalibrationError):
            raise CalibrationError(f"{where}: {exc}") from None
        raise CalibrationError(f"{where}: a value has the wrong type ({exc}); see docs/design-space.md") from None


def _table(document: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = document.get(key, {})
    if not isinstance(value, dict):
        raise CalibrationError(f"{where}: {key} must be a table ([{key}])")
    return dict(value)
