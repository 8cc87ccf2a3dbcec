"""The protocol language: a TOML file or the equivalent Python objects, checked against a rig.

    protocol = load_protocol("closed_loop_liver.toml", rig=load_rig_view("rig.toml"))
    protocol = check_protocol(Protocol(name=..., drug=Drug(...), chips=[...], steps=[...]), rig)

Both raise ``ProtocolFileError`` listing *every* problem, one per line, each as
``protocol.toml line N: what is wrong; fix: what to write instead``. The language itself
(steps, fields, units, interlocks, approval) is described in docs/protocols.md.
"""

from __future__ import annotations

from pathlib import Path

from protocols.errors import Problem, ProtocolError, ProtocolFileError
from protocols.language.interlock import ACTIONS, Condition, Interlock, parse_condition, parse_interlock
from protocols.language.parse import parse_text
from protocols.language.protocol import Drug, Protocol
from protocols.language.rig_view import RigView, load_rig_view
from protocols.language.steps import (
    STEP_TYPES,
    Approve,
    Calibrate,
    Dose,
    Execute,
    HoldUntil,
    MediaChange,
    Perfuse,
    Prime,
    Propose,
    Repeat,
    Sample,
    Step,
    Wait,
    expand,
)
from protocols.language.validate import check
from twin.userfile import read_user_text

__all__ = [
    "ACTIONS",
    "Approve",
    "Calibrate",
    "Condition",
    "Dose",
    "Drug",
    "Execute",
    "HoldUntil",
    "Interlock",
    "MediaChange",
    "Perfuse",
    "Prime",
    "Propose",
    "Protocol",
    "Repeat",
    "STEP_TYPES",
    "Sample",
    "Step",
    "Wait",
    "check_protocol",
    "expand",
    "load_protocol",
    "load_rig_view",
    "parse_condition",
    "parse_interlock",
    "parse_protocol",
    "read_protocol_text",
]


def parse_protocol(text: str, rig: RigView | None = None, filename: str = "protocol.toml") -> Protocol:
    """The protocol in TOML ``text``, checked (against ``rig`` when given)."""
    protocol, problems = parse_text(text, filename)
    if protocol is not None:
        problems = [*problems, *check(protocol, rig)]
    if problems or protocol is None:
        raise ProtocolFileError(_unique(problems), filename)
    return protocol


def load_protocol(path: str | Path, rig: RigView | None = None) -> Protocol:
    """Read and check a protocol file; errors name the file and the line."""
    path = Path(path)
    return parse_protocol(read_protocol_text(path), rig, path.name)


def read_protocol_text(path: str | Path) -> str:
    """The file's text: UTF-8, a real file, not empty, not huge — else one ProtocolError line."""
    return read_user_text(path, "protocol file", error=ProtocolError)


def check_protocol(protocol: Protocol, rig: RigView | None = None) -> Protocol:
    """Check a Python-built protocol the way a file is checked (lines are 0); returns it."""
    problems = check(protocol, rig)
    if problems:
        raise ProtocolFileError(problems, f"protocol {protocol.name!r}")
    return protocol


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))
