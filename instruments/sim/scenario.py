"""A simulated rig's scenario: hidden "true" chip parameters, sensor noise, assay delay, faults.

    seed = 7
    [truth.all]                 # liver_chip parameters for every chip (MODELS.md §2)
    vmax = 2.0
    [truth.chip2]               # … overridden per chip
    vmax = 3.5
    [sensors.all]               # noise (SD) and drift per hour, in the sensor's unit
    noise_sd = 0.2
    [sensors.pressure.values]   # constant values for register-map points / pH
    inlet_pressure = 12.0
    [assay]
    delay_h = 4.0               # offline assay results arrive this long after sampling
    [[faults]]                  # → instruments.sim.faults.Fault; at_s = rig seconds since start
    kind = "timeout"
    device = "do2"
    at_s = 86400
    duration_s = 600
    params = {}

Errors are ConfigError with the scenario file's line. docs/rig-file.md documents it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from instruments.errors import ConfigError
from instruments.rig_toml import TomlDocument, read_toml
from instruments.sim.faults import FAULT_KINDS, Fault, FaultPlan
from twin.chip import initial_state
from twin.errors import TwinError

ALL = "all"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SensorNoise(_Strict):
    noise_sd: float = Field(default=0.0, ge=0)
    drift_per_h: float = 0.0
    values: dict[str, float] = {}          # register-map point / "pH" → constant value
    baseline_ohm_cm2: float = Field(default=1200.0, gt=0)  # TEER of a fully viable barrier


class AssaySpec(_Strict):
    delay_h: float = Field(default=0.0, ge=0)


class FaultSpec(_Strict):
    kind: str
    device: str
    at_s: float = Field(ge=0)
    duration_s: float = Field(default=0.0, ge=0)
    params: dict[str, Any] = {}


class ScenarioFile(_Strict):
    seed: int = 0
    truth: dict[str, dict[str, float]] = {}
    sensors: dict[str, SensorNoise] = {}
    assay: AssaySpec = AssaySpec()
    faults: list[FaultSpec] = []


@dataclass(frozen=True)
class Scenario:
    spec: ScenarioFile = field(default_factory=ScenarioFile)
    doc: TomlDocument | None = None

    @property
    def seed(self) -> int:
        return self.spec.seed

    @property
    def assay_delay_h(self) -> float:
        return self.spec.assay.delay_h

    def truth_for(self, chip: str) -> dict[str, float]:
        """The hidden parameters of ``chip`` (defaults of the model where not given)."""
        return {**self.spec.truth.get(ALL, {}), **self.spec.truth.get(chip, {})}

    def noise_for(self, instrument: str) -> SensorNoise:
        """``[sensors.all]`` overridden key by key by ``[sensors.<instrument>]``."""
        merged: dict[str, Any] = {}
        for key in (ALL, instrument):
            if key in self.spec.sensors:
                merged |= self.spec.sensors[key].model_dump(exclude_unset=True)
        return SensorNoise(**merged)

    def faults(self) -> list[Fault]:
        return [Fault(f.kind, f.device, f.at_s, f.duration_s, dict(f.params)) for f in self.spec.faults]

    def plan(self) -> FaultPlan:
        """A fresh fault plan; times are rig seconds since the simulated rig started."""
        return FaultPlan(self.faults())


def parse_scenario(text: str, filename: str = "scenario.toml", *, chips: list[str] | None = None,
                   instruments: list[str] | None = None) -> Scenario:
    """Validate a scenario (against the rig's chip and instrument names when given)."""
    doc = read_toml(text, filename)
    try:
        spec = ScenarioFile.model_validate(doc.data)
    except pydantic.ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(part for part in error["loc"] if isinstance(part, (str, int)))
        raise doc.error(loc, f"{'.'.join(map(str, loc))}: {error['msg']}",
                        "see docs/rig-file.md (scenario files)") from None
    _check(spec, doc, chips, instruments)
    return Scenario(spec, doc)


def load_scenario(path: str | Path, **names: list[str] | None) -> Scenario:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read scenario file {path} ({exc.strerror}); fix: check the path") from None
    return parse_scenario(text, path.name, **names)


def _check(spec: ScenarioFile, doc: TomlDocument, chips: list[str] | None, instruments: list[str] | None) -> None:
    for chip, params in spec.truth.items():
        if chips is not None and chip != ALL and chip not in chips:
            raise doc.error(("truth", chip), f"[truth.{chip}]: no chip {chip!r} in the rig",
                            f"use 'all' or one of: {', '.join(chips)}")
        try:
            initial_state(params)
        except TwinError as exc:
            raise doc.error(("truth", chip), f"[truth.{chip}]: {exc}", "use liver_chip parameter names "
                            "(ps, vmax, km, kon, koff, kmax, ec50, hill, ocr) with positive values") from None
    for name in spec.sensors:
        if instruments is not None and name != ALL and name not in instruments:
            raise doc.error(("sensors", name), f"[sensors.{name}]: no instrument {name!r} in the rig",
                            f"use 'all' or one of: {', '.join(instruments)}")
    for index, fault in enumerate(spec.faults):
        if fault.kind not in FAULT_KINDS:
            raise doc.error(("faults", index, "kind"), f"unknown fault kind {fault.kind!r}",
                            f"use one of: {', '.join(FAULT_KINDS)}")
        if instruments is not None and fault.device not in instruments:
            raise doc.error(("faults", index, "device"), f"fault for unknown device {fault.device!r}",
                            f"use one of: {', '.join(instruments)}")
