"""NONMEM-style datasets: read, fill NONMEM's defaults, and refuse what cannot be simulated.

Columns ``ID TIME AMT EVID CMT RATE II ADDL SS DV MDV`` (any case; only TIME is required)
plus covariate columns, which keep their names. ``.`` or an empty cell is a missing value.
Missing dosing items mean what NONMEM takes them to mean (AMT, RATE, II, ADDL, SS = 0;
CMT = 1, the default dose compartment); a missing ID, TIME or EVID is an error, as is a
missing covariate wherever a parameter reads it (``twin.pk.params``). Every error names the
row — the 1-based line of the file for ``read_dataset``, else the 1-based row — and the fix.

The frame returned keeps the input's row order; its index holds those row labels.

Bounded work: a dataset whose dose records expand (ADDL repeats) to more than
``MAX_DOSE_EVENTS`` doses, or that reaches past ``MAX_TIME_H`` (TIME, or the last
additional dose), is refused before anything is simulated — ``ADDL = 1e9`` would
otherwise exhaust memory. The file itself is read through ``twin.userfile`` (UTF-8, not a
directory, at most ``MAX_DATASET_BYTES``); a header without rows, a column named twice,
an infinite number or an MDV other than 0/1 are refused with the row and the fix.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from twin.errors import DatasetError
from twin.model import ModelSpec
from twin.userfile import MAX_DATASET_BYTES, read_user_text

STANDARD = ("ID", "TIME", "AMT", "EVID", "CMT", "RATE", "II", "ADDL", "SS", "DV", "MDV")
_DEFAULTS = {"AMT": 0.0, "RATE": 0.0, "II": 0.0, "ADDL": 0.0, "SS": 0.0, "CMT": 1.0}
MISSING = {"", "."}
MAX_DOSE_EVENTS = 1_000_000  # doses after ADDL expansion: a 10-year daily regimen is 3,650
MAX_TIME_H = 100 * 365.25 * 24  # a century of hours: later is a unit mistake (seconds? minutes?)


def read_dataset(path: str | Path) -> pd.DataFrame:
    """Read a NONMEM-style CSV; the index is each row's line number in the file (header = 1)."""
    path = Path(path)
    text = read_user_text(path, "dataset", max_bytes=MAX_DATASET_BYTES, error=DatasetError)
    raw = read_csv_text(text, path, DatasetError)
    raw.index = pd.RangeIndex(2, len(raw) + 2, name="line")
    try:
        return prepare_dataset(raw)  # row errors start "line N:"; the file name goes in front below
    except DatasetError as exc:  # name the file; a column problem is on the header, line 1
        message = str(exc)
        raise DatasetError(f"{path.name} {message if message.startswith('line ') else 'line 1: ' + message}") from None


def read_csv_text(text: str, path: Path, error: type[Exception] = DatasetError) -> pd.DataFrame:
    """CSV text → all-string frame; a repeated column name or no data rows is ``error`` naming the file."""
    header = next(csv.reader(io.StringIO(text)), [])
    names = [name.strip() for name in header]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise error(
            f"{path} line 1: column {', '.join(map(repr, repeated))} appears twice in the header; "
            "fix: keep one column of each name"
        )
    try:
        raw = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise error(f"{path}: not a readable CSV ({reason}); fix: save it as comma-separated text") from None
    if raw.empty:
        raise error(f"{path} line 1: the header has no rows under it; fix: add the data rows (one per dose or sample)")
    return raw


def prepare_dataset(frame: pd.DataFrame) -> pd.DataFrame:
    """Standard columns upper-cased and numeric, NONMEM defaults filled, general rules checked."""
    data = frame.copy()
    if data.index.name != "line":
        data.index = pd.RangeIndex(1, len(data) + 1, name="row")
    data = _normalise_headers(data)
    for column in data.columns:
        data[column] = _numeric(data, column, strict=column in STANDARD)
    _check_finite(data)
    _fill_defaults(data)
    _check_rows(data)
    _check_bounded_work(data)
    return data


def check_dataset_for_model(data: pd.DataFrame, spec: ModelSpec) -> None:
    """Doses must go to a compartment the model has (CMT n is the n-th state)."""
    n = len(spec.states)
    bad = _is_dose(data) & ~data["CMT"].between(1, n)
    _raise_first(
        data,
        bad,
        lambda r: (
            f"dose into CMT {r.CMT:g}, but model {spec.name!r} has compartments 1–{n} "
            f"({', '.join(f'{i + 1}={s}' for i, s in enumerate(spec.state_names))}); fix CMT"
        ),
    )


def row_label(data: pd.DataFrame, position: int) -> str:
    """'line 12' or 'row 11' for the row at 0-based ``position``."""
    return f"{data.index.name or 'row'} {data.index[position]}"


def _normalise_headers(data: pd.DataFrame) -> pd.DataFrame:
    renamed = {
        c: str(c).strip().upper() if str(c).strip().upper() in STANDARD else str(c).strip() for c in data.columns
    }
    seen: dict[str, str] = {}
    for original, new in renamed.items():
        key = new.lower()
        if key in seen:
            raise DatasetError(f"columns {seen[key]!r} and {original!r} are the same name; keep one")
        seen[key] = str(original)
    if "TIME" not in renamed.values():
        raise DatasetError("the dataset has no TIME column; add one (hours)")
    return data.rename(columns=renamed)


def _numeric(data: pd.DataFrame, column: str, strict: bool) -> pd.Series:
    values = data[column]
    if pd.api.types.is_numeric_dtype(values):
        return values.astype(float)
    text = values.astype(str).str.strip()
    numbers = pd.to_numeric(text.where(~text.isin(MISSING)), errors="coerce")
    bad = numbers.isna() & ~text.isin(MISSING) & values.notna()
    if bad.any():
        if not strict:
            return values  # a text covariate is fine until a parameter reads it
        at = int(np.flatnonzero(bad.to_numpy())[0])
        raise DatasetError(
            f"{row_label(data, at)}: column {column}: {text.iloc[at]!r} is not a number; "
            f"write a number, or '.' for a missing value"
        )
    return numbers.astype(float)


def _check_finite(data: pd.DataFrame) -> None:
    """'inf' and '1e999' parse as numbers; no NONMEM item may be infinite (NaN is '.' = missing)."""
    for column in STANDARD:
        if column in data:
            _raise_first(
                data,
                np.isinf(data[column]),
                lambda r, c=column: f"{c} {r[c]:g} is not a finite number; write a number, or '.' for a missing value",
            )


def _check_bounded_work(data: pd.DataFrame) -> None:
    """Refuse, before any expansion, datasets whose doses or times would run for ever."""
    time = data["TIME"].abs()
    _raise_first(
        data,
        time > MAX_TIME_H,
        lambda r: f"TIME {r.TIME:g} h is beyond the limit of {MAX_TIME_H:g} h (100 years); give TIME in hours",
    )
    dose = _is_dose(data)
    last = data["TIME"] + data["ADDL"] * data["II"]
    _raise_first(
        data,
        dose & (last > MAX_TIME_H),
        lambda r: (
            f"ADDL {r.ADDL:g} doses every {r.II:g} h run to "
            f"{r.TIME + r.ADDL * r.II:g} h, beyond the limit of {MAX_TIME_H:g} h (100 years); lower ADDL or II"
        ),
    )
    infusion = dose & (data["RATE"] > 0) & (data["AMT"] > 0)
    _raise_first(
        data,
        infusion & (data["AMT"] / data["RATE"].where(infusion, 1.0) > MAX_TIME_H),
        lambda r: (
            f"AMT {r.AMT:g} at RATE {r.RATE:g} infuses for {r.AMT / r.RATE:g} h, beyond the limit of "
            f"{MAX_TIME_H:g} h; check the units of AMT and RATE"
        ),
    )
    events = float((data["ADDL"].where(dose, -1.0) + 1).sum())
    if events > MAX_DOSE_EVENTS:
        raise DatasetError(
            f"the dose records expand (with ADDL) to {events:,.0f} doses, above the limit of "
            f"{MAX_DOSE_EVENTS:,}; fix: lower ADDL, or use SS for a regimen at steady state"
        )


def _fill_defaults(data: pd.DataFrame) -> None:
    for column, default in _DEFAULTS.items():
        data[column] = data[column].fillna(default) if column in data else default
    if "ID" not in data:
        data["ID"] = 1.0
    if "DV" not in data:
        data["DV"] = np.nan
    if "EVID" not in data:  # NM-TRAN's rule: a dose where there is an amount, else an observation
        dose = (data["AMT"] > 0) | ((data["SS"] > 0) & (data["RATE"] > 0))
        other = data["MDV"].fillna(0).eq(1) if "MDV" in data else False
        data["EVID"] = np.where(dose, 1.0, np.where(other, 2.0, 0.0))
    if "MDV" not in data:
        data["MDV"] = np.where((data["EVID"] != 0) | data["DV"].isna(), 1.0, 0.0)


def _is_dose(data: pd.DataFrame) -> pd.Series:
    return data["EVID"].isin((1, 4))


def _raise_first(data: pd.DataFrame, bad: pd.Series, message) -> None:
    if bad.any():
        at = int(np.flatnonzero(bad.to_numpy())[0])
        raise DatasetError(f"{row_label(data, at)}: {message(data.iloc[at])}")


def _check_rows(data: pd.DataFrame) -> None:
    for column in ("ID", "TIME", "EVID"):
        _raise_first(data, data[column].isna(), lambda r, c=column: f"{c} is missing; every row needs a {c}")
    dose = _is_dose(data)
    rules = [
        (
            ~data["EVID"].isin((0, 1, 2, 3, 4)),
            lambda r: (
                f"EVID {r.EVID:g} is not one of 0 (observation), 1 (dose), 2 (other), 3 (reset), 4 (reset and dose)"
            ),
        ),
        (data["AMT"] < 0, lambda r: f"AMT {r.AMT:g} is negative; amounts are doses given, ≥ 0"),
        (data["II"] < 0, lambda r: f"II {r.II:g} is negative; give the dosing interval in hours"),
        (~data["SS"].isin((0, 1, 2)), lambda r: f"SS {r.SS:g} is not 0, 1 or 2"),
        (~data["MDV"].isin((0, 1)), lambda r: f"MDV {r.MDV:g} is not 0 (DV observed) or 1 (DV missing)"),
        ((data["ADDL"] < 0) | (data["ADDL"] % 1 != 0), lambda r: f"ADDL {r.ADDL:g} is not a whole number ≥ 0"),
        (
            ~((data["RATE"] >= 0) | data["RATE"].isin((-1, -2))),
            lambda r: (
                f"RATE {r.RATE:g} is not allowed; use "
                "> 0 (infusion rate), 0 (bolus), -1 (modelled rate rN) or -2 (modelled duration dN)"
            ),
        ),
        (
            dose & (data["II"] > 0) & (data["ADDL"] == 0) & (data["SS"] == 0),
            lambda r: f"II {r.II:g} without ADDL or SS; set ADDL (number of additional doses) or SS, or set II to 0",
        ),
        (
            dose & (data["ADDL"] > 0) & (data["II"] == 0),
            lambda r: f"ADDL {r.ADDL:g} with II 0; give II, the interval between the additional doses",
        ),
        (
            dose & (data["SS"] > 0) & (data["II"] == 0) & ~((data["RATE"] > 0) & (data["AMT"] == 0)),
            lambda r: "SS with II 0; give II, or for a constant infusion at steady state set AMT 0 and RATE > 0",
        ),
        (
            dose & (data["RATE"] > 0) & (data["AMT"] == 0) & ((data["SS"] == 0) | (data["II"] > 0)),
            lambda r: "RATE > 0 with AMT 0 is only allowed as a steady-state infusion (SS 1, II 0); give AMT",
        ),
        (dose & (data["CMT"] % 1 != 0), lambda r: f"CMT {r.CMT:g} is not a compartment number"),
    ]
    for bad, message in rules:
        _raise_first(data, bad, message)
    _check_time_order(data)


def _check_time_order(data: pd.DataFrame) -> None:
    """Time may not go back within a subject, except on a reset (EVID 3 or 4)."""
    subject = subject_index(data)
    step_back = (data["TIME"].diff() < 0) & (np.diff(subject, prepend=-1) == 0)
    bad = step_back & ~data["EVID"].isin((3, 4))
    _raise_first(
        data,
        bad,
        lambda r: (
            f"TIME {r.TIME:g} is before the previous row's time for ID {r.ID:g}; "
            "sort each subject's rows by time (time may restart only on an EVID 3/4 reset)"
        ),
    )


def subject_index(data: pd.DataFrame) -> np.ndarray:
    """0-based subject number per row: NONMEM starts a new individual whenever ID changes."""
    ids = data["ID"].to_numpy()
    return np.cumsum(np.concatenate([[False], ids[1:] != ids[:-1]])).astype(np.int64)
