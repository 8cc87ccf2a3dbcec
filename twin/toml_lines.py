"""TOML with line numbers: values from ``tomllib``, lines from a light scan of the text.

``tomllib`` gives values but no positions, and a file error must say which line to fix.
``read_toml(text, filename, error=…)`` returns a :class:`TomlDocument`: the parsed data
plus an index from *paths* (``("pumps", 2, "max_flow")``, the shape of a pydantic error's
``loc``) to 1-based line numbers, built from ``[table]``, ``[[array.of.tables]]`` and
``key =`` lines. ``doc.error(path, message, fix)`` makes the project's one error shape::

    rig.toml line 14: instrument 'do2' repeats unit id 1 on tcp://10.0.0.5:502; fix: give it a free unit id

Each element of an array value gets the line it starts on (``("faults", 2)`` in
``faults = [ {…}, {…}, {…} ]`` written one per line); keys inside inline tables map to
the line of the element or key that holds them (the lookup falls back to the nearest
enclosing path that has a line). Every file
type written in TOML (rig, scenario, patient, design space, trial) uses this one finder.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from twin.errors import TwinError

Path = tuple[str | int, ...]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'')
_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")
# pydantic puts the branch of a union it tried into ``loc`` ("float", "str", …): not a key of the file
_UNION_BRANCHES = {"str", "int", "float", "bool", "list", "dict"}


def _split_dotted(name: str) -> list[str]:
    parts = re.findall(r'"[^"]*"|\'[^\']*\'|[^.\s]+', name)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


def file_path(loc: Sequence[Any]) -> Path:
    """A pydantic error ``loc`` as a path in the file: union branches and validator tags dropped."""
    return tuple(p for p in loc if isinstance(p, int) or (isinstance(p, str) and p not in _UNION_BRANCHES))


@dataclass
class TomlDocument:
    data: dict[str, Any]
    filename: str
    lines: dict[Path, int] = field(default_factory=dict)
    error_type: type[Exception] = TwinError

    def line(self, path: Sequence[Any]) -> int:
        """The line of ``path`` or of its nearest enclosing path; 1 if nothing matches."""
        path = file_path(path)
        for end in range(len(path), 0, -1):
            if (found := self.lines.get(tuple(path[:end]))) is not None:
                return found
        return 1

    def where(self, path: Sequence[Any]) -> str:
        return f"{self.filename} line {self.line(path)}"

    def error(self, path: Sequence[Any], message: str, fix: str) -> Exception:
        return self.error_type(f"{self.where(path)}: {message}; fix: {fix}")


class _Scanner:
    """Tracks the current table while walking the text line by line."""

    def __init__(self) -> None:
        self.lines: dict[Path, int] = {}
        self.arrays: dict[Path, int] = {}  # resolved array path -> number of elements so far
        self.table: Path = ()
        self.depth = 0  # bracket depth of a multi-line value
        self.value: Path = ()  # the key whose (multi-line) value is being read
        self.index = 0  # number of the next element of that value's outer array
        self.expecting = False  # after "[" or ",": the next text starts an element

    def resolve(self, parts: list[str]) -> Path:
        path: Path = ()
        for part in parts:
            path += (part,)
            if path in self.arrays:
                path += (self.arrays[path] - 1,)
        return path

    def header(self, double: bool, name: str, number: int) -> None:
        parts = _split_dotted(name)
        if double:
            parent = self.resolve(parts[:-1]) + (parts[-1],)
            self.arrays[parent] = self.arrays.get(parent, 0) + 1
            self.lines.setdefault(parent, number)
            self.table = parent + (self.arrays[parent] - 1,)
        else:
            self.table = self.resolve(parts)
        self.lines[self.table] = number

    def scan(self, number: int, raw: str) -> None:
        text = _STRINGS.sub('""', raw).split("#", 1)[0]
        if self.depth == 0:
            if (match := _HEADER.match(raw)) is not None and "=" not in raw.split("#", 1)[0]:
                self.header(match.group(1) == "[[", match.group(2), number)
                return
            if (match := _KEY.match(raw)) is None:
                return
            self.value, self.index, self.expecting = self.table + tuple(_split_dotted(match.group(1))), 0, False
            self.lines.setdefault(self.value, number)
            text = text.split("=", 1)[1] if "=" in text else ""
        self.walk(number, text)

    def walk(self, number: int, text: str) -> None:
        """Follow the brackets of a value; each element of its outer array gets the line it starts on."""
        for char in text:
            starts = self.depth == 1 and self.expecting and not char.isspace() and char not in ",]"
            if starts:
                self.lines.setdefault(self.value + (self.index,), number)
                self.index, self.expecting = self.index + 1, False
            if char in "[{":
                self.depth += 1
                self.expecting = self.depth == 1 and char == "["
            elif char in "]}":
                self.depth = max(self.depth - 1, 0)
            elif char == "," and self.depth == 1:
                self.expecting = True


def read_toml(text: str, filename: str, error: type[Exception] = TwinError) -> TomlDocument:
    """Parse ``text``; a syntax error becomes ``error`` naming the file and the line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_LINE.search(str(exc))
        # "(at end of document)": the error is on the last line
        line = match.group(1) if match else str(max(len(text.splitlines()), 1))
        reason = _TOML_LINE.sub("", str(exc)).strip()
        raise error(
            f"{filename} line {line}: not valid TOML ({reason}); fix: check quotes, brackets and '=' on that line"
        ) from None
    scanner = _Scanner()
    for number, raw in enumerate(text.splitlines(), start=1):
        scanner.scan(number, raw)
    return TomlDocument(data, filename, scanner.lines, error)


__all__ = ["Path", "TomlDocument", "file_path", "read_toml"]
