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
Every number must be finite; a fault must be one the named device can have (a pump alarm
on a pump, a Modbus exception on a Modbus device) with parameters that device knows
(``FAULT_PARAMS``). The drivers are known once the rig is: ``Scenario.check_against(rig)``,
which ``SimulatedRig`` calls before it starts anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from instruments.errors import ConfigError
from instruments.rig.toml_lines import TomlDocument, read_toml
from instruments.sim.faults import FAULT_KINDS, Fault, FaultPlan
from twin.chip import initial_state
from twin.errors import TwinError
from twin.userfile import read_user_text

ALL = "all"
TEN_YEARS_S = 10 * 365 * 86400.0  # no simulated run is longer; a fault later than this is a typo
MAX_TRUTH_VALUE = 1e6  # a liver_chip parameter beyond this makes the twin's ODE absurdly stiff

_SERIAL_FAULTS = ("timeout", "dropout", "garbled", "truncated", "vanish")
_MODBUS_FAULTS = ("timeout", "dropout", "garbled", "truncated", "crc_error", "modbus_exception", "word_order")
# which fault kinds each driver's simulator acts on (the others would silently do nothing)
FAULTS_BY_DRIVER = {
    "ne1000": (*_SERIAL_FAULTS, "crc_error", "pump_alarm"),
    "reglo_icc": (*_SERIAL_FAULTS, "pump_alarm"),
    "teer": _SERIAL_FAULTS,
    "visiferm_do": _MODBUS_FAULTS,
    "ph_arc": _MODBUS_FAULTS,
    "modbus_sensor": _MODBUS_FAULTS,
}
MODBUS_EXCEPTION_CODES = (1, 2, 3, 4, 5, 6, 8, 10, 11)
# the params each fault kind reads, with a check and what is accepted
FAULT_PARAMS: dict[str, dict[str, tuple[Any, str]]] = {
    "pump_alarm": {
        "alarm": (lambda v: v in ("S", "R"), "'S' (stalled) or 'R' (reset after power loss)"),
        "channel": (lambda v: type(v) is int and 1 <= v <= 8, "a Reglo ICC channel 1–8"),
    },
    "modbus_exception": {
        "code": (
            lambda v: type(v) is int and v in MODBUS_EXCEPTION_CODES,
            f"a Modbus exception code ({', '.join(map(str, MODBUS_EXCEPTION_CODES))})",
        )
    },
    "vanish": {"gap_s": (lambda v: type(v) in (int, float) and 0 <= v <= 3600, "seconds of absence, 0–3600")},
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SensorNoise(_Strict):
    noise_sd: float = Field(default=0.0, ge=0, le=1e6)
    drift_per_h: float = Field(default=0.0, ge=-1e6, le=1e6)
    values: dict[str, float] = {}  # register-map point / "pH" → constant value
    baseline_ohm_cm2: float = Field(default=1200.0, gt=0, le=1e7)  # TEER of a fully viable barrier


class AssaySpec(_Strict):
    delay_h: float = Field(default=0.0, ge=0, le=24 * 365)


class FaultSpec(_Strict):
    kind: str
    device: str
    at_s: float = Field(ge=0, le=TEN_YEARS_S)
    duration_s: float = Field(default=0.0, ge=0, le=TEN_YEARS_S)
    params: dict[str, Any] = {}


class ScenarioFile(_Strict):
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
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

    def check_against(self, chips: list[str], drivers: Mapping[str, str]) -> None:
        """Check names and fault kinds against a rig (instrument name → driver); ConfigError with the line."""
        _check(self.spec, self.doc or TomlDocument({}, "scenario"), chips, drivers)


def parse_scenario(
    text: str,
    filename: str = "scenario.toml",
    *,
    chips: list[str] | None = None,
    instruments: list[str] | Mapping[str, str] | None = None,
) -> Scenario:
    """Validate a scenario (against the rig's chip and instrument names when given; given a mapping
    instrument name → driver, also that each fault is one that device can have)."""
    doc = read_toml(text, filename)
    try:
        spec = ScenarioFile.model_validate(doc.data)
    except pydantic.ValidationError as exc:
        error = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
        loc = tuple(part for part in error["loc"] if isinstance(part, (str, int)))
        got = "" if error["type"] in ("missing", "extra_forbidden") else f" (got {_short(error.get('input'))})"
        raise doc.error(
            loc, f"{'.'.join(map(str, loc))}: {error['msg']}{got}", "see docs/rig-file.md (scenario files)"
        ) from None
    _check(spec, doc, chips, instruments)
    return Scenario(spec, doc)


def load_scenario(path: str | Path, **names: list[str] | None) -> Scenario:
    """Read and validate a scenario file: not UTF-8, a directory, empty or over 1 MiB is one ConfigError."""
    path = Path(path)
    return parse_scenario(read_user_text(path, "scenario file", error=ConfigError), path.name, **names)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _check(
    spec: ScenarioFile, doc: TomlDocument, chips: list[str] | None, instruments: list[str] | Mapping[str, str] | None
) -> None:
    for chip, params in spec.truth.items():
        for name, value in params.items():
            if value > MAX_TRUTH_VALUE:
                raise doc.error(
                    ("truth", chip, name),
                    f"[truth.{chip}] {name} = {value:g} is beyond {MAX_TRUTH_VALUE:g}",
                    "give the parameter in the model's units (MODELS.md §2)",
                )
        if chips is not None and chip != ALL and chip not in chips:
            raise doc.error(
                ("truth", chip),
                f"[truth.{chip}]: no chip {chip!r} in the rig",
                f"use 'all' or one of: {', '.join(chips)}",
            )
        try:
            initial_state(params)
        except TwinError as exc:
            raise doc.error(
                ("truth", chip),
                f"[truth.{chip}]: {exc}",
                "use liver_chip parameter names (ps, vmax, km, kon, koff, kmax, ec50, hill, ocr) with positive values",
            ) from None
    for name in spec.sensors:
        if instruments is not None and name != ALL and name not in instruments:
            raise doc.error(
                ("sensors", name),
                f"[sensors.{name}]: no instrument {name!r} in the rig",
                f"use 'all' or one of: {', '.join(instruments)}",
            )
    for index, fault in enumerate(spec.faults):
        if fault.kind not in FAULT_KINDS:
            raise doc.error(
                ("faults", index, "kind"), f"unknown fault kind {fault.kind!r}", f"use one of: {', '.join(FAULT_KINDS)}"
            )
        if instruments is not None and fault.device not in instruments:
            raise doc.error(
                ("faults", index, "device"),
                f"fault for unknown device {fault.device!r}",
                f"use one of: {', '.join(instruments)}",
            )
        if isinstance(instruments, Mapping):
            _fault_fits_device(doc, index, fault, instruments[fault.device])
        _fault_params(doc, index, fault)


def _fault_fits_device(doc: TomlDocument, index: int, fault: FaultSpec, driver: str) -> None:
    possible = FAULTS_BY_DRIVER.get(driver, ())
    if fault.kind not in possible:
        raise doc.error(
            ("faults", index, "kind"),
            f"a {fault.kind!r} fault cannot happen on {fault.device!r} ({driver})",
            f"for a {driver} use one of: {', '.join(possible)}",
        )


def _fault_params(doc: TomlDocument, index: int, fault: FaultSpec) -> None:
    known = FAULT_PARAMS.get(fault.kind, {})
    for name, value in fault.params.items():
        if name not in known:
            raise doc.error(
                ("faults", index, "params"),
                f"a {fault.kind!r} fault has no parameter {name!r}",
                f"use {', '.join(known) or 'no params'}",
            )
        check, accepted = known[name]
        if not check(value):
            raise doc.error(
                ("faults", index, "params"),
                f"{fault.kind} {name} = {_short(value)} is not accepted",
                f"give {accepted}",
            )
