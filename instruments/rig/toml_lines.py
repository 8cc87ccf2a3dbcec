"""TOML with line numbers for the instrument files: values from ``tomllib``, lines from
``twin.toml_lines`` (shared with every other TOML file type).

``read_toml(text, filename)`` returns a :class:`TomlDocument`: the parsed data plus the index from
paths to lines. ``doc.error(path, message, fix)`` makes the project's one error shape::

    rig.toml line 14: instrument 'do2' repeats unit id 1 on tcp://10.0.0.5:502; fix: give it a free unit id
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from instruments.errors import ConfigError
from twin.toml_lines import Path, line_index, line_of

_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")


@dataclass
class TomlDocument:
    data: dict[str, Any]
    filename: str
    lines: dict[Path, int] = field(default_factory=dict)

    def line(self, path: Path) -> int:
        """The line of ``path`` or of its nearest enclosing path; 1 if nothing matches."""
        found = line_of(self.lines, path)
        return 1 if found is None else found

    def where(self, path: Path) -> str:
        return f"{self.filename} line {self.line(path)}"

    def error(self, path: Path, message: str, fix: str) -> ConfigError:
        return ConfigError(f"{self.where(path)}: {message}; fix: {fix}")


def read_toml(text: str, filename: str) -> TomlDocument:
    """Parse ``text``; a syntax error becomes ConfigError with its line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_LINE.search(str(exc))
        line = match.group(1) if match else "?"
        reason = _TOML_LINE.sub("", str(exc)).strip()
        raise ConfigError(
            f"{filename} line {line}: not valid TOML ({reason}); fix: check quotes, brackets and '=' on that line"
        ) from None
    return TomlDocument(data, filename, line_index(text))
