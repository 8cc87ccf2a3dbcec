"""Parameter values for a dataset simulation: numbers, quantities, or ``@column`` references.

Structural parameters (``cl``, ``v``, ...) hold one value per subject: a column reference must
be constant within each subject (time-varying structural parameters are not supported).
NONMEM's dosing parameters — ``fN`` bioavailability, ``alagN`` lag time, ``rN`` modelled rate
(RATE = -1), ``dN`` modelled duration (RATE = -2), for doses into compartment N — are read,
as NONMEM reads them, on each dose record. Structural parameters not given take the
catalogue default; ``fN`` defaults to 1 and ``alagN`` to 0; ``rN``/``dN`` have no default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from twin.dataset import row_label, subject_index
from twin.errors import DatasetError, InvalidValueError, UnknownParameterError
from twin.model import ModelSpec
from twin.units import to_unit

# kind: (unit, default, what it is)
DOSING = {
    "f": ("dimensionless", 1.0, "bioavailability"),
    "alag": ("h", 0.0, "lag time"),
    "r": ("mg/h", np.nan, "modelled infusion rate (RATE -1)"),
    "d": ("h", np.nan, "modelled duration (RATE -2)"),
}
_DOSING_NAME = re.compile(r"^(f|alag|r|d)([1-9][0-9]*)$")

ParamValue = float | str | object  # a number, "1.5 L/h", "@column", or a pint Quantity


@dataclass(frozen=True)
class ResolvedParameters:
    """Values ready for the solvers."""

    structural: dict[str, np.ndarray]  # name -> (n_subjects,) in the catalogue unit
    f: np.ndarray  # (n_rows,) for the compartment each row doses; meaningful on dose rows
    alag_h: np.ndarray
    rate_mg_per_h: np.ndarray  # NaN where not given
    duration_h: np.ndarray


def dosing_parameter_names(spec: ModelSpec) -> tuple[str, ...]:
    return tuple(f"{kind}{n}" for n in range(1, len(spec.states) + 1) for kind in DOSING)


def resolve_parameters(data: pd.DataFrame, spec: ModelSpec, params: Mapping[str, ParamValue]) -> ResolvedParameters:
    _check_names(spec, params)
    subjects = subject_index(data)
    structural = {}
    for parameter in spec.parameters:
        value = params.get(parameter.name, parameter.default)
        per_row = _per_row(data, parameter.name, value, parameter.unit)
        structural[parameter.name] = _per_subject(data, parameter.name, per_row, subjects)
    dosing = {kind: _dosing_per_row(data, spec, kind, params) for kind in DOSING}
    return ResolvedParameters(structural, dosing["f"], dosing["alag"], dosing["r"], dosing["d"])


def _check_names(spec: ModelSpec, params: Mapping[str, ParamValue]) -> None:
    allowed = set(spec.parameter_names) | set(dosing_parameter_names(spec))
    for name in params:
        if name not in allowed:
            raise UnknownParameterError(
                f"model {spec.name!r} has no parameter {name!r}; its parameters are "
                f"{', '.join(spec.parameter_names)} and the dosing parameters fN, alagN, rN, dN "
                f"for N = 1..{len(spec.states)}"
            )


def _per_row(data: pd.DataFrame, name: str, value: ParamValue, unit: str) -> np.ndarray:
    if isinstance(value, str) and value.strip().startswith("@"):
        return _column(data, name, value.strip()[1:])
    return np.full(len(data), to_unit(value, unit, what=f"parameter {name}"))


def _column(data: pd.DataFrame, name: str, column: str) -> np.ndarray:
    matches = [c for c in data.columns if str(c).lower() == column.lower()]
    if not matches:
        raise DatasetError(
            f"parameter {name} reads column {column!r}, which the dataset does not have; "
            f"its columns are: {', '.join(map(str, data.columns))}"
        )
    raw = data[matches[0]]
    if pd.api.types.is_numeric_dtype(raw):
        return raw.to_numpy(dtype=float)
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    text = raw.astype(str).str.strip()
    bad = np.isnan(values) & raw.notna().to_numpy() & ~text.isin(("", ".")).to_numpy()
    if bad.any():
        at = int(np.flatnonzero(bad)[0])
        raise DatasetError(
            f"{row_label(data, at)}: column {matches[0]} ({name}): {text.iloc[at]!r} is not a number; write a number"
        )
    return values


def _per_subject(data: pd.DataFrame, name: str, per_row: np.ndarray, subjects: np.ndarray) -> np.ndarray:
    missing = np.isnan(per_row)
    if missing.any():
        at = int(np.flatnonzero(missing)[0])
        raise DatasetError(f"{row_label(data, at)}: no value for parameter {name} (missing cell); fill it in")
    first = np.flatnonzero(np.diff(subjects, prepend=-1) != 0)
    per_subject = per_row[first]
    varies = per_row != per_subject[subjects]
    if varies.any():
        at = int(np.flatnonzero(varies)[0])
        raise DatasetError(
            f"{row_label(data, at)}: parameter {name} changes within a subject; time-varying "
            "structural parameters are not supported — make it constant per ID"
        )
    if (per_subject <= 0).any():
        at = int(first[np.flatnonzero(per_subject <= 0)[0]])
        raise InvalidValueError(f"{row_label(data, at)}: parameter {name} = {per_row[at]:g}; it must be > 0")
    return per_subject


def _dosing_per_row(data: pd.DataFrame, spec: ModelSpec, kind: str, params: Mapping[str, ParamValue]) -> np.ndarray:
    """The value of ``kind``N on each row, N being the row's CMT (the dose record's value)."""
    unit, default, _ = DOSING[kind]
    values = np.full(len(data), default)
    cmt = data["CMT"].to_numpy()
    for n in range(1, len(spec.states) + 1):
        name = f"{kind}{n}"
        if name in params:
            rows = cmt == n
            values[rows] = _per_row(data, name, params[name], unit)[rows]
    return values
