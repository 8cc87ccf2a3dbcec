"""The lab file: which supervisor this machine runs, its rigs, and its optional OPC UA / SiLA 2 endpoints.

    [supervisor]
    name = "bench-pc-1"            # unique in the lab (the store names its owner by it)

    [endpoints]                    # optional; `--opcua` / `--sila` override
    opcua = "opc.tcp://0.0.0.0:4840"
    sila = "0.0.0.0:50052"

    [[rigs]]
    file = "rigs/liver4.toml"      # relative to the lab file
    endpoints = "sim/liver4.json"  # optional: the endpoints file of `chiptwin sim-rig`
    clock_rate = 1.0               # optional, without endpoints

A mistake is one LabFileError naming the file and line, like the rig file's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from instruments.errors import ConfigError
from instruments.rig.model import Rig, load_rig
from instruments.rig.toml_lines import TomlDocument, read_toml
from protocols.errors import ProtocolError
from twin.userfile import read_user_text


class LabFileError(ProtocolError, ValueError):
    """A lab file that cannot be used; the message names the file, the line and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class SupervisorSpec(_Strict):
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")
    poll_s: float = Field(default=0.2, gt=0, le=10)  # how often children are checked (wall seconds)
    heartbeat_s: float = Field(default=2.0, gt=0, le=60)
    max_quick_deaths: int = Field(default=3, ge=1, le=100)  # a runner that dies this often in a row is parked
    quick_death_s: float = Field(default=30.0, gt=0)  # "quick": dead within this long of its start
    spare_runner: bool = True  # keep one runner process with its imports done: restarts skip them


class EndpointsSpec(_Strict):
    opcua: str | None = Field(default=None, pattern=r"^opc\.tcp://[^:/]+:\d+/?.*$")
    sila: str | None = Field(default=None, pattern=r"^[^:/]+:\d+$")


class RigEntry(_Strict):
    file: str = Field(min_length=1)
    endpoints: str | None = None
    clock_rate: float = Field(default=1.0, gt=0)


class LabFileModel(_Strict):
    supervisor: SupervisorSpec
    endpoints: EndpointsSpec = EndpointsSpec()
    rigs: list[RigEntry] = Field(min_length=1)


@dataclass(frozen=True)
class LabRig:
    """A rig this supervisor owns: its validated rig file and how its runners reach it."""

    name: str
    rig_path: Path
    rig: Rig
    endpoints: Path | None
    clock_rate: float


@dataclass(frozen=True)
class Lab:
    path: Path
    supervisor: SupervisorSpec
    endpoints: EndpointsSpec
    rigs: tuple[LabRig, ...]

    def rig(self, name: str) -> LabRig:
        return next(r for r in self.rigs if r.name == name)


def load_lab(path: str | Path) -> Lab:
    path = Path(path)
    try:
        text = read_user_text(path, "lab file", error=LabFileError)
        doc = read_toml(text, path.name)
    except ConfigError as exc:
        raise LabFileError(str(exc)) from None
    return parse_lab(doc, path)


def parse_lab(doc: TomlDocument, path: Path) -> Lab:
    try:
        model = LabFileModel.model_validate(doc.data)
    except pydantic.ValidationError as exc:
        raise _shape_error(doc, exc) from None
    rigs: list[LabRig] = []
    for index, entry in enumerate(model.rigs):
        rigs.append(_lab_rig(doc, path, index, entry, rigs))
    return Lab(path, model.supervisor, model.endpoints, tuple(rigs))


def _lab_rig(doc: TomlDocument, path: Path, index: int, entry: RigEntry, before: list[LabRig]) -> LabRig:
    where = ("rigs", index, "file")
    rig_path = (path.parent / entry.file).resolve()
    try:
        rig = load_rig(rig_path)
    except ConfigError as exc:
        raise LabFileError(f"{doc.where(where)}: rig file {entry.file}: {exc}") from None
    twin = next((r for r in before if r.name == rig.name), None)
    if twin is not None:
        raise LabFileError(
            f"{doc.where(where)}: rig {rig.name!r} is named twice (also by {twin.rig_path.name}); "
            "fix: list each rig once — a rig has one runner at a time"
        )
    endpoints = None
    if entry.endpoints is not None:
        endpoints = (path.parent / entry.endpoints).resolve()
    return LabRig(rig.name, rig_path, rig, endpoints, entry.clock_rate)


def _shape_error(doc: TomlDocument, exc: pydantic.ValidationError) -> LabFileError:
    error = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
    loc = tuple(part for part in error["loc"] if isinstance(part, (str, int)))
    key = ".".join(str(part) for part in loc)
    if error["type"] == "missing":
        return LabFileError(f"{doc.where(loc)}: {key} is missing; fix: add {loc[-1]} = … (see docs/lab.md)")
    if error["type"] == "extra_forbidden":
        return LabFileError(f"{doc.where(loc)}: unknown key {key}; fix: remove it or check its spelling (docs/lab.md)")
    return LabFileError(f"{doc.where(loc)}: {key}: {error['msg']} (got {error.get('input')!r}); fix: correct the value")
