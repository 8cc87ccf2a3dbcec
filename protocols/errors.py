"""The protocol layer's exceptions: one root, precise leaves, messages that say what to change.

A protocol file is checked completely before anything runs, so ``ProtocolFileError``
carries *every* problem found (``.problems``), each with its line and a fix::

    protocol.toml line 12: dose concentration 10 has no unit; fix: write '10 uM'
    protocol.toml line 20: unknown step kind 'dosee'; fix: use one of prime, perfuse, ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from twin.errors import ChipTwinError


class ProtocolError(ChipTwinError):
    """Root: anything wrong with a protocol (a user can act on the message)."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a protocol: where (line, 0 when unknown), what, and what to do."""

    line: int
    message: str
    fix: str = ""

    def render(self, filename: str = "protocol.toml") -> str:
        where = f"{filename} line {self.line}" if self.line > 0 else filename
        return f"{where}: {self.message}" + (f"; fix: {self.fix}" if self.fix else "")

    def to_dict(self) -> dict[str, object]:
        return {"line": self.line, "message": self.message, "fix": self.fix}


class ProtocolFileError(ProtocolError, ValueError):
    """A protocol (file or Python-built) with problems; ``str`` lists them one per line."""

    def __init__(self, problems: Sequence[Problem], filename: str = "protocol.toml") -> None:
        self.problems = tuple(sorted(problems, key=lambda p: p.line))
        self.filename = filename
        super().__init__("\n".join(p.render(filename) for p in self.problems))


class FieldError(ProtocolError, ValueError):
    """One field that does not convert (a missing or wrong unit, a bad value); no line yet."""

    def __init__(self, message: str, fix: str = "") -> None:
        self.message, self.fix = message, fix
        super().__init__(f"{message}; fix: {fix}" if fix else message)


class RigFileError(ProtocolError, ValueError):
    """A rig file the protocol layer cannot read (see protocols.language.rig_view)."""
