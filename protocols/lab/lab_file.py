"""The lab file: which supervisor this machine runs, its rigs, and its optional OPC UA / SiLA 2 endpoints.

    [supervisor]
    name = "bench-pc-1"            # unique in the lab (the store names its owner by it)

    [endpoints]                    # optional; `--opcua` / `--sila` override
    opcua = "opc.tcp://0.0.0.0:4840"
    sila = "0.0.0.0:50052"

    [opcua]                        # optional: the OPC UA endpoint's security (docs/opcua.md)
    security = ["sign-encrypt", "sign"]   # add "none" to allow unencrypted sessions
    certificate_dir = "opcua-pki"  # relative to the lab file: server certificate, trusted/, rejected/
    certificate = "pki/lab.der"    # optional, with private_key: the lab's own certificate
    private_key = "pki/lab.pem"
    trust_clients = "listed"       # or "all"
    anonymous = "read"             # or "off"

    [[rigs]]
    file = "rigs/liver4.toml"      # relative to the lab file
    endpoints = "sim/liver4.json"  # optional: the endpoints file of `chiptwin sim-rig`
    clock_rate = 1.0               # optional, without endpoints

A mistake is one LabFileError naming the file and line, like the rig file's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

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


OpcUaPolicy = Literal["sign-encrypt", "sign", "none"]


def _secure_policies() -> list[OpcUaPolicy]:
    return ["sign-encrypt", "sign"]


class OpcUaSpec(_Strict):
    """The OPC UA endpoint's security; the endpoint's defaults (ui/endpoints/opcua/security.py)."""

    security: list[OpcUaPolicy] = Field(default_factory=_secure_policies, min_length=1)
    certificate_dir: str = Field(default="opcua-pki", min_length=1)
    certificate: str | None = None
    private_key: str | None = None
    trust_clients: Literal["listed", "all"] = "listed"
    anonymous: Literal["read", "off"] = "read"


class RigEntry(_Strict):
    file: str = Field(min_length=1)
    endpoints: str | None = None
    clock_rate: float = Field(default=1.0, gt=0)


class LabFileModel(_Strict):
    supervisor: SupervisorSpec
    endpoints: EndpointsSpec = EndpointsSpec()
    opcua: OpcUaSpec = OpcUaSpec()
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
    opcua: OpcUaSpec = field(default_factory=OpcUaSpec)

    def rig(self, name: str) -> LabRig:
        return next(r for r in self.rigs if r.name == name)

    def opcua_arguments(self) -> list[str]:
        """The ``[opcua]`` table as ``python -m ui.endpoints.opcua`` options, paths from the lab file's folder."""
        spec, here = self.opcua, self.path.parent
        arguments = ["--security", ",".join(spec.security), "--certificate-dir", str(here / spec.certificate_dir)]
        for option, path in (("--certificate", spec.certificate), ("--private-key", spec.private_key)):
            if path is not None:
                arguments += [option, str(here / path)]
        return arguments + ["--trust-clients", spec.trust_clients, "--anonymous", spec.anonymous]


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
    if (model.opcua.certificate is None) != (model.opcua.private_key is None):
        raise LabFileError(
            f"{doc.where(('opcua',))}: opcua.certificate and opcua.private_key go together; fix: give both or neither"
        )
    return Lab(path, model.supervisor, model.endpoints, tuple(rigs), model.opcua)


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
