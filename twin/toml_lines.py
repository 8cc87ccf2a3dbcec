"""Line numbers for TOML files: values come from ``tomllib``, lines from a light scan of the text.

``tomllib`` gives values but no positions, and an error in a file a person wrote must say which
line to fix. ``line_index(text)`` maps *paths* (``("instruments", 2, "connection", "port")``,
``("comedication", 0, "drug")``) to 1-based line numbers, built from ``[table]``,
``[[array.of.tables]]`` and ``key =`` lines; ``line_of(lines, path)`` finds the line of a path or
of its nearest enclosing path. Keys inside inline tables or multi-line arrays map to the line of
the key that holds them. Shared by every TOML file type (rig, scenario, protocol, patient, design
space, trial), so their messages look alike: ``p001.toml line 4: weight must be …``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

Path = tuple[str | int, ...]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'')


def _split_dotted(name: str) -> list[str]:
    parts = re.findall(r'"[^"]*"|\'[^\']*\'|[^.\s]+', name)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


class _Scanner:
    """Tracks the current table while walking the text line by line."""

    def __init__(self) -> None:
        self.lines: dict[Path, int] = {}
        self.arrays: dict[Path, int] = {}  # resolved array path -> number of elements so far
        self.table: Path = ()
        self.depth = 0  # bracket depth of a multi-line value

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
            if (match := _KEY.match(raw)) is not None:
                self.lines.setdefault(self.table + tuple(_split_dotted(match.group(1))), number)
        self.depth = max(self.depth + text.count("[") + text.count("{") - text.count("]") - text.count("}"), 0)


def line_index(text: str) -> dict[Path, int]:
    """Path → 1-based line of every table, array-of-tables item and key in ``text``."""
    scanner = _Scanner()
    for number, raw in enumerate(text.splitlines(), start=1):
        scanner.scan(number, raw)
    return scanner.lines


def line_of(lines: Mapping[Path, int], path: Path) -> int | None:
    """The line of ``path`` or of its nearest enclosing path; None if nothing matches."""
    for end in range(len(path), 0, -1):
        if (found := lines.get(tuple(path[:end]))) is not None:
            return found
    return None


def located(where: str, lines: Mapping[Path, int] | None, *path: str | int) -> str:
    """``where`` with the line of ``path`` when known: "p001.toml line 4" (else just "p001.toml")."""
    line = None if not lines else line_of(lines, tuple(path))
    return where if line is None else f"{where} line {line}"
