"""The rig's and scenario's TOML reader: ``twin.toml_lines`` with ``ConfigError`` as the error.

The line finder itself lives in ``twin.toml_lines`` so every TOML file type (rig,
scenario, patient, design space, trial) names lines the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from instruments.errors import ConfigError
from twin import toml_lines
from twin.toml_lines import Path


@dataclass
class TomlDocument(toml_lines.TomlDocument):
    error_type: type[Exception] = ConfigError

    def error(self, path: Sequence[Any], message: str, fix: str) -> ConfigError:
        return ConfigError(f"{self.where(path)}: {message}; fix: {fix}")


def read_toml(text: str, filename: str) -> TomlDocument:
    """Parse ``text``; a syntax error becomes ConfigError with its line."""
    doc = toml_lines.read_toml(text, filename, error=ConfigError)
    return TomlDocument(doc.data, doc.filename, doc.lines, ConfigError)


__all__ = ["Path", "TomlDocument", "read_toml"]
