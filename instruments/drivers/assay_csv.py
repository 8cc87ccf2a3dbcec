"""Parse and validate one offline-assay CSV (LC-MS, plate reader) against known samples.

Columns (header names case-insensitive, order free, extra columns ignored):

    sample_id, chip, time, analyte, value, unit, lloq

``time`` is ISO 8601 (``2024-05-02T14:30:00``; a naive time is read as UTC). ``lloq``
flags a result below the lower limit of quantification: true/false, yes/no, 1/0, BLQ,
<LLOQ or blank (= false); ``value`` may then be blank. ``unit`` must parse with pint.
Every problem is reported with its row number (the header is row 1, as a spreadsheet
shows it). The caller supplies ``known_samples`` (sample id → KnownSample); the store
is not importable from instruments.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Mapping

import pint

from twin.units import ureg

REQUIRED_COLUMNS = ("sample_id", "chip", "time", "analyte", "value", "unit", "lloq")
_TRUE = {"true", "yes", "1", "blq", "<lloq", "y"}
_FALSE = {"", "false", "no", "0", "n"}


@dataclass(frozen=True)
class KnownSample:
    """What the lab already recorded about a sample when it was taken."""

    sample_id: str
    chip: str
    taken_at: datetime | None = None


@dataclass(frozen=True)
class AssayRecord:
    sample_id: str
    chip: str
    taken_at: datetime
    analyte: str
    value: float | None  # None only when below LLOQ with no number given
    unit: str
    below_lloq: bool
    source_file: str
    row: int


class RowError(ValueError):
    """One row's problem; ``row`` counts the header as row 1."""

    def __init__(self, row: int, message: str) -> None:
        super().__init__(f"row {row}: {message}")
        self.row = row


def parse_time(text: str) -> datetime:
    stamp = datetime.fromisoformat(text.strip())
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)


def _parse_flag(text: str, row: int) -> bool:
    flag = text.strip().lower()
    if flag in _TRUE:
        return True
    if flag in _FALSE:
        return False
    raise RowError(row, f"lloq flag {text!r} is not one of true/false, yes/no, 1/0, BLQ, <LLOQ or blank")


def _parse_value(text: str, below_lloq: bool, row: int) -> float | None:
    if not text.strip():
        if below_lloq:
            return None
        raise RowError(row, "value is blank but the row is not flagged below LLOQ")
    try:
        value = float(text)
    except ValueError:
        raise RowError(row, f"value {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise RowError(row, f"value {text!r} must be a finite, non-negative number")
    return value


def _parse_unit(text: str, row: int) -> str:
    try:
        ureg.Unit(text.strip())
    except (
        pint.errors.UndefinedUnitError,
        pint.errors.DefinitionSyntaxError,
        ValueError,
        TypeError,
        AttributeError,
        AssertionError,
    ):
        raise RowError(row, f"unit {text!r} is not a unit pint understands (write e.g. 'ng/mL', 'uM')") from None
    return text.strip()


def _match(
    sample_id: str, chip: str, taken_at: datetime, known: Mapping[str, KnownSample], tolerance_s: float, row: int
) -> None:
    sample = known.get(sample_id)
    if sample is None:
        raise RowError(row, f"sample id {sample_id!r} is not a known sample; register the sample first")
    if sample.chip != chip:
        raise RowError(row, f"sample {sample_id!r} was taken from chip {sample.chip!r}, not {chip!r}")
    if sample.taken_at is not None:
        known_at = sample.taken_at if sample.taken_at.tzinfo else sample.taken_at.replace(tzinfo=timezone.utc)
        gap_s = abs((taken_at - known_at).total_seconds())
        if gap_s > tolerance_s:
            raise RowError(
                row,
                f"sample {sample_id!r} was taken at {known_at.isoformat()}, the file says "
                f"{taken_at.isoformat()} ({gap_s:.0f} s apart, tolerance {tolerance_s:.0f} s)",
            )


def parse_row(
    cells: dict[str, str], row: int, source: str, known: Mapping[str, KnownSample], tolerance_s: float
) -> AssayRecord:
    sample_id, chip, analyte = (cells[k].strip() for k in ("sample_id", "chip", "analyte"))
    for name, text in (("sample_id", sample_id), ("chip", chip), ("analyte", analyte)):
        if not text:
            raise RowError(row, f"{name} is blank")
    try:
        taken_at = parse_time(cells["time"])
    except ValueError:
        raise RowError(row, f"time {cells['time']!r} is not ISO 8601 (e.g. 2024-05-02T14:30:00)") from None
    below_lloq = _parse_flag(cells["lloq"], row)
    value = _parse_value(cells["value"], below_lloq, row)
    unit = _parse_unit(cells["unit"], row)
    _match(sample_id, chip, taken_at, known, tolerance_s, row)
    return AssayRecord(sample_id, chip, taken_at, analyte, value, unit, below_lloq, source, row)


def parse_assay_csv(
    text: str, source: str, known: Mapping[str, KnownSample], tolerance_s: float = 60.0
) -> tuple[list[AssayRecord], list[RowError]]:
    """All records and all row errors of one file (a file-level problem is reported as row 1)."""
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip().lower() for name in (reader.fieldnames or [])]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        return [], [RowError(1, f"missing column(s) {', '.join(missing)}; need {', '.join(REQUIRED_COLUMNS)}")]
    reader.fieldnames = header
    records: list[AssayRecord] = []
    errors: list[RowError] = []
    seen: dict[tuple[str, str], int] = {}
    for row_number, cells in enumerate(reader, start=2):
        if None in cells or any(cells[k] is None for k in REQUIRED_COLUMNS):
            errors.append(RowError(row_number, "wrong number of cells"))
            continue
        try:
            record = parse_row(cells, row_number, source, known, tolerance_s)
        except RowError as exc:
            errors.append(exc)
            continue
        key = (record.sample_id, record.analyte)
        if key in seen:
            errors.append(RowError(row_number, f"sample {key[0]!r} analyte {key[1]!r} repeats row {seen[key]}"))
            continue
        seen[key] = row_number
        records.append(record)
    if not records and not errors:
        errors.append(RowError(1, "the file has a header but no results"))
    return records, errors
