"""The lab dataset (one row per event or observation, as the store exports it) → chip problems.

Columns: ``chip, time_h, event`` (dose | sample | media_change | observation), then as the
event needs: ``amount_nmol, volume_ml, conc_um`` (media change), ``observable, value, unit``
(observation), and the chip constants ``v_medium_ml, v_cell_ml, n_cells_million,
kla_per_h`` (first non-empty value per chip). Rows with equal time apply in file order:
an observation written before an event at the same time sees the state before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd
import pint

from calibration.errors import CalibrationError, NoObservationsError
from twin.chip import Dose, MediaChange, Sample
from twin.dataset import MAX_TIME_H, read_csv_text
from twin.errors import TwinError
from twin.units import ureg
from twin.userfile import MAX_DATASET_BYTES, read_user_text

EVENTS = ("dose", "sample", "media_change", "observation")
COLUMNS = (
    "chip",
    "time_h",
    "event",
    "amount_nmol",
    "volume_ml",
    "conc_um",
    "observable",
    "value",
    "unit",
    "v_medium_ml",
    "v_cell_ml",
    "n_cells_million",
    "kla_per_h",
)
OBSERVABLE_UNITS = {"drug_medium": "uM", "metabolite_medium": "uM", "oxygen": "percent", "viability": "dimensionless"}
CONSTANT_COLUMNS = {"v_medium_ml": "V_m0", "v_cell_ml": "V_c", "n_cells_million": "N_cells", "kla_per_h": "kla"}
BEFORE_EVENT_H = 1e-9  # an observation listed before a same-time event is placed just before it
MAX_LAB_VALUE = 1e12  # no lab number (nmol, mL, µM, hours) is larger; beyond is a corrupt cell


@dataclass
class ChipData:
    chip: str
    events: list = field(default_factory=list)
    constants: dict[str, float] = field(default_factory=dict)
    times_h: list[float] = field(default_factory=list)
    observables: list[str] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    @property
    def n_observations(self) -> int:
        return len(self.values)


LabData = dict[str, ChipData]  # chip name → its events, constants and observations


def read_lab_dataset(path: str | Path) -> LabData:
    """Chips by name, each with its events, constants and observations (values in model units)."""
    return _chips(_read(path), f"{path} line")


def lab_dataset(rows: Iterable[Mapping[str, object]], source: str) -> LabData:
    """The same dataset from rows in memory (as the store exports them), with the same checks;
    a message names ``source`` and the row's number."""
    frame = pd.DataFrame([{c: _cell(row.get(c)) for c in COLUMNS} for row in rows], columns=list(COLUMNS), dtype=object)
    frame.index = pd.RangeIndex(1, len(frame) + 1)
    return _chips(frame, f"{source} row")


def _cell(value: object) -> object:
    return "" if value is None else value


def _chips(frame: pd.DataFrame, where_prefix: str) -> LabData:
    chips: dict[str, ChipData] = {}
    last_time: dict[str, float] = {}
    for line, row in zip(frame.index, frame.itertuples(index=False)):
        where = f"{where_prefix} {line}"
        chip = chips.setdefault(str(row.chip), ChipData(str(row.chip)))
        time_h = _number(row.time_h, where, "time_h")
        if not 0 <= time_h <= MAX_TIME_H:
            raise CalibrationError(
                f"{where}: time_h {time_h:g} is outside 0–{MAX_TIME_H:g} h (a century); "
                "give hours since the chip's start"
            )
        if time_h < last_time.get(chip.chip, 0.0):
            raise CalibrationError(
                f"{where}: time {time_h:g} h is before the chip's previous row; sort each chip's rows by time"
            )
        last_time[chip.chip] = time_h
        _constants(chip, row, where)
        _apply_row(chip, row, time_h, where)
    empty = [c.chip for c in chips.values() if c.n_observations == 0]
    if len(empty) == len(chips):
        raise NoObservationsError(f"{where_prefix.rsplit(' ', 1)[0]}: no observation rows; nothing to fit")
    return chips


def _read(path: str | Path) -> pd.DataFrame:
    # UTF-8, a file, not empty, ≤ 256 MiB, no repeated column, at least one row: one line each
    text = read_user_text(path, "lab dataset", max_bytes=MAX_DATASET_BYTES, error=CalibrationError)
    frame = read_csv_text(text, Path(path), CalibrationError)
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = {"chip", "time_h", "event"} - set(frame.columns)
    if missing:
        raise CalibrationError(f"{path}: a lab dataset needs the columns {', '.join(sorted(missing))}")
    for column in ("amount_nmol", "volume_ml", "conc_um", "observable", "value", "unit", *CONSTANT_COLUMNS):
        if column not in frame.columns:
            frame[column] = ""
    frame.index = pd.RangeIndex(2, len(frame) + 2)  # file line numbers (header is line 1)
    return frame


def _number(text: str, where: str, column: str, required: bool = True) -> float:
    text = str(text).strip()
    if text in ("", "."):
        if required:
            raise CalibrationError(f"{where}: {column} is empty; this row needs it")
        return float("nan")
    try:
        value = float(text)
    except ValueError:
        raise CalibrationError(f"{where}: {column} {text!r} is not a number") from None
    if not np.isfinite(value) or abs(value) > MAX_LAB_VALUE:
        raise CalibrationError(
            f"{where}: {column} {text!r} is not a finite number within ±{MAX_LAB_VALUE:g}; "
            "write a number, or leave the cell empty"
        )
    return value


def _constants(chip: ChipData, row, where: str) -> None:
    for column, name in CONSTANT_COLUMNS.items():
        value = _number(getattr(row, column), where, column, required=False)
        if np.isfinite(value) and name not in chip.constants:
            chip.constants[name] = value


def _apply_row(chip: ChipData, row, time_h: float, where: str) -> None:
    kind = str(row.event).strip().lower()
    try:
        if kind == "dose":
            volume = _number(row.volume_ml, where, "volume_ml", required=False)
            chip.events.append(
                Dose(time_h, _number(row.amount_nmol, where, "amount_nmol"), 0.0 if np.isnan(volume) else volume)
            )
        elif kind == "sample":
            chip.events.append(Sample(time_h, _number(row.volume_ml, where, "volume_ml")))
        elif kind == "media_change":
            chip.events.append(
                MediaChange(
                    time_h,
                    _number(row.volume_ml, where, "volume_ml"),
                    _number(row.conc_um, where, "conc_um", required=False) if str(row.conc_um).strip() else 0.0,
                )
            )
        elif kind == "observation":
            _observation(chip, row, time_h, where)
        else:
            raise CalibrationError(f"{where}: unknown event {row.event!r}; use one of {', '.join(EVENTS)}")
    except TwinError as exc:
        raise CalibrationError(f"{where}: {exc}") from None


def _observation(chip: ChipData, row, time_h: float, where: str) -> None:
    name = str(row.observable).strip()
    if name not in OBSERVABLE_UNITS:
        raise CalibrationError(f"{where}: unknown observable {name!r}; use one of {', '.join(OBSERVABLE_UNITS)}")
    value = _number(row.value, where, "value", required=False)
    if np.isnan(value):
        return  # a missing value is no observation (recorded as such by the caller's selection)
    unit = str(row.unit).strip() or OBSERVABLE_UNITS[name]
    try:
        value = float(ureg.Quantity(value, unit).to(OBSERVABLE_UNITS[name]).magnitude)
    except (pint.DimensionalityError, pint.UndefinedUnitError, ValueError):
        raise CalibrationError(
            f"{where}: unit {unit!r} does not convert to {OBSERVABLE_UNITS[name]} for {name}"
        ) from None
    earlier_event = any(event.time_h == time_h for event in chip.events)
    pending_same_time = not earlier_event  # events after this row at this time must not affect it
    chip.times_h.append(time_h - (BEFORE_EVENT_H if pending_same_time else 0.0) if time_h > 0 else time_h)
    chip.observables.append(name)
    chip.values.append(value)
