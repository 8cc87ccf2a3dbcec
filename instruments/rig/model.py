"""A rig file: one TOML file describing chips, instruments, channels and the safe state.

    rig = load_rig("examples/rigs/liver4.toml")      # ConfigError "rig.toml line N: …; fix: …"
    with open_rig(rig) as devices:                    # connected Pump / Sensor drivers
        devices["pump1"].dispense(Q_(10, "uL"), Q_(100, "uL/min"))

The format is documented in docs/rig-file.md. Validation is in three layers: TOML syntax
(``rig_toml``), shape and types (pydantic, ``rig_schema``) and whole-rig checks
(``rig_validate``); every error names the file line to fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic

from instruments.drivers.limits import ChipLimits
from instruments.errors import ConfigError
from instruments.rig.schema import PUMP_DRIVERS, ChannelSpec, ChipSpec, InstrumentSpec, RigFile
from instruments.rig.toml_lines import TomlDocument, read_toml
from instruments.rig.validate import measurements_of, validate
from twin.units import Q_
from twin.userfile import read_user_text


@dataclass(frozen=True)
class Rig:
    """A validated rig file; ``doc`` keeps the line index for later error messages."""

    spec: RigFile
    doc: TomlDocument
    path: Path | None = None

    @property
    def name(self) -> str:
        return self.spec.rig.name

    @property
    def chips(self) -> list[ChipSpec]:
        return self.spec.chips

    @property
    def instruments(self) -> list[InstrumentSpec]:
        return self.spec.instruments

    @property
    def channels(self) -> list[ChannelSpec]:
        return self.spec.channels

    def chip(self, name: str) -> ChipSpec:
        return _by_name(self.spec.chips, name, "chip")

    def instrument(self, name: str) -> InstrumentSpec:
        return _by_name(self.spec.instruments, name, "instrument")

    def pumps(self) -> list[InstrumentSpec]:
        return [i for i in self.instruments if i.driver in PUMP_DRIVERS]

    def measurements(self, instrument: str) -> dict[str, str]:
        """What the instrument reports: measurement quantity → unit."""
        return measurements_of(self.instrument(instrument))

    def safe_action(self, instrument: str) -> str:
        """``stop`` or ``none``; pumps default to ``stop``."""
        default = "stop" if self.instrument(instrument).driver in PUMP_DRIVERS else "none"
        return self.spec.safe_state.get(instrument, default)

    def chip_limits(self, pump: str) -> ChipLimits:
        """The tightest limits of the pump itself and of every chip it feeds (for the driver)."""
        spec = self.instrument(pump)
        rates = [spec.limits.max_rate] + [self.chip(c).limits.max_flow for c in spec.feeds]
        volumes = [spec.limits.max_volume] + [self.chip(c).limits.max_dose_volume for c in spec.feeds]
        return ChipLimits(max_rate=_smallest(rates, "uL/min"), max_volume=_smallest(volumes, "uL"))


def _by_name(items: list[Any], name: str, what: str) -> Any:
    for item in items:
        if item.name == name:
            return item
    raise ConfigError(f"no {what} named {name!r}; the rig has: {', '.join(i.name for i in items)}")


def _smallest(texts: list[str | None], unit: str) -> Any:
    values = [Q_(text) for text in texts if text is not None]
    return min(values, key=lambda q: q.to(unit).magnitude) if values else None


def parse_rig(text: str, filename: str = "rig.toml", path: Path | None = None) -> Rig:
    """Validate rig-file ``text``; raise ConfigError naming ``filename`` and a line."""
    doc = read_toml(text, filename)
    try:
        spec = RigFile.model_validate(doc.data)
    except pydantic.ValidationError as exc:
        raise _shape_error(doc, exc) from None
    validate(spec, doc)
    return Rig(spec, doc, path)


def load_rig(path: str | Path) -> Rig:
    """Read and validate a rig file: not UTF-8, a directory, empty or over 1 MiB is one ConfigError."""
    path = Path(path)
    return parse_rig(read_user_text(path, "rig file", error=ConfigError), path.name, path)


def _shape_error(doc: TomlDocument, exc: pydantic.ValidationError) -> ConfigError:
    # a misspelt key also makes the right key "missing": report the unknown key first
    error = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
    loc = tuple(part for part in error["loc"] if isinstance(part, (str, int)))
    key = ".".join(str(part) for part in loc)
    kind = error["type"]
    if kind == "missing":
        return doc.error(loc, f"{key} is missing", f"add {loc[-1]} = … to this table")
    if kind == "extra_forbidden":
        return doc.error(loc, f"unknown key {key}", "remove it or check its spelling (see docs/rig-file.md)")
    return doc.error(loc, f"{key}: {error['msg']} (got {error.get('input')!r})", "correct the value")


__all__ = ["Rig", "load_rig", "parse_rig"]
