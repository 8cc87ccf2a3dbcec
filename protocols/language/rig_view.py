"""What the protocol layer needs to know about a rig, behind one small Protocol.

The protocol checker needs only names, kinds, units and limits: chip names with medium
volumes and dosing limits, instrument names with their kind and limits, channel names with
units (and, where there is one, the twin observable a channel measures). ``RigView`` is
that contract; ``load_rig_view(path)`` builds one from a rig file loaded and validated by
the instruments layer (``instruments.rig.model.load_rig``), and ``rig_view_from_rig_file``
adapts an already-validated ``RigFile``. Tests may build a ``SimpleRig`` by hand.

The rig file states no minimum medium volume; until it does, a chip must keep at least
``MIN_MEDIUM_FRACTION`` of its nominal medium (sampling below that is an error).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Protocol, runtime_checkable

import pint

from instruments.errors import ConfigError
from instruments.rig.model import load_rig
from instruments.rig.schema import PUMP_DRIVERS, RigFile
from protocols.errors import RigFileError
from twin.units import Q_

PUMP_KINDS = {"ne1000": "syringe_pump", "reglo_icc": "peristaltic_pump"}
OXYGEN_WORDS = ("oxygen", "o2", "do")
MIN_MEDIUM_FRACTION = 0.5  # the rig file states no minimum medium volume yet: keep at least half


@dataclass(frozen=True)
class ChipView:
    """A chip: its twin model, medium volume and dosing limits (None: no limit stated)."""

    name: str
    medium_volume: pint.Quantity
    model: str = "liver_chip"
    min_medium_volume: pint.Quantity = field(default_factory=lambda: Q_(0.0, "mL"))
    max_concentration: pint.Quantity | None = None
    max_dose_volume: pint.Quantity | None = None
    max_flow: pint.Quantity | None = None
    constants: Mapping[str, float] = field(default_factory=dict)  # twin constants (V_c, N_cells, kla)


@dataclass(frozen=True)
class InstrumentView:
    """An instrument: ``kind`` is syringe_pump, peristaltic_pump or sensor."""

    name: str
    kind: str
    max_volume: pint.Quantity | None = None
    max_rate: pint.Quantity | None = None
    feeds: tuple[str, ...] = ()
    stock_concentration: pint.Quantity | None = None

    @property
    def is_pump(self) -> bool:
        return self.kind.endswith("pump")


@dataclass(frozen=True)
class ChannelView:
    """A channel: name, unit, the chip it watches (if any), the twin observable it measures."""

    name: str
    unit: str
    measurement: str = ""
    chip: str | None = None
    instrument: str = ""
    observable: str | None = None


@runtime_checkable
class RigView(Protocol):
    """What the language needs of a rig (read-only)."""

    @property
    def name(self) -> str: ...

    @property
    def chips(self) -> Mapping[str, ChipView]: ...

    @property
    def instruments(self) -> Mapping[str, InstrumentView]: ...

    @property
    def channels(self) -> Mapping[str, ChannelView]: ...


@dataclass(frozen=True)
class SimpleRig:
    name: str
    chips: Mapping[str, ChipView]
    instruments: Mapping[str, InstrumentView] = field(default_factory=dict)
    channels: Mapping[str, ChannelView] = field(default_factory=dict)


def matching_channels(rig: RigView, name: str) -> list[ChannelView]:
    """Channels an interlock name refers to: the channel of that name, or every channel
    measuring that quantity (``oxygen`` → the oxygen channel of each chip)."""
    if name in rig.channels:
        return [rig.channels[name]]
    return [c for c in rig.channels.values() if name in (c.measurement, c.observable)]


def pumps(rig: RigView) -> list[InstrumentView]:
    return [i for i in rig.instruments.values() if i.is_pump]


def _q(text: str | None, unit: str) -> pint.Quantity | None:
    return None if text is None else Q_(text.replace("µ", "u")).to(unit)


def _unit(text: str) -> str:
    return "percent" if text.strip().startswith("%") else text


def _observable(measurement: str, name: str) -> str | None:
    """The twin observable a channel measures (only oxygen is measured online)."""
    words = set(re.split(r"[._\s-]+", f"{measurement} {name}".lower()))
    return "oxygen" if words.intersection(OXYGEN_WORDS) else None


def rig_view_from_rig_file(rig: RigFile) -> SimpleRig:
    """Adapt the instruments layer's validated rig model to the protocol layer's view."""
    chips = {
        c.name: ChipView(
            c.name,
            Q_(c.v_medium_ml, "mL"),
            c.model,
            Q_(c.v_medium_ml * MIN_MEDIUM_FRACTION, "mL"),
            max_concentration=_q(c.limits.max_concentration, "uM"),
            max_dose_volume=_q(c.limits.max_dose_volume, "mL"),
            max_flow=_q(c.limits.max_flow, "mL/h"),
            constants={
                "V_c": c.v_cell_ml,
                "N_cells": c.n_cells_million,
                **({"kla": c.kla_per_h} if c.kla_per_h else {}),
            },
        )
        for c in rig.chips
    }
    instruments = {
        i.name: InstrumentView(
            i.name,
            PUMP_KINDS.get(i.driver, "sensor"),
            _q(i.limits.max_volume, "mL"),
            _q(i.limits.max_rate, "mL/h"),
            tuple(i.feeds),
            Q_(i.drug_concentration_um, "uM") if i.driver in PUMP_DRIVERS else None,
        )
        for i in rig.instruments
    }
    channels = {
        c.name: ChannelView(
            c.name, _unit(c.unit), c.measurement, c.chip, c.instrument, _observable(c.measurement, c.name)
        )
        for c in rig.channels
    }
    return SimpleRig(rig.rig.name, chips, instruments, channels)


def load_rig_view(path: str | Path) -> SimpleRig:
    """Load and validate a rig file with the instruments layer; RigFileError names the line to fix."""
    try:
        rig = load_rig(path)
    except ConfigError as exc:
        raise RigFileError(str(exc)) from None
    return rig_view_from_rig_file(rig.spec)
