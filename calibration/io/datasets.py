"""Data in: NONMEM-style datasets and the store's lab datasets, told apart by their columns.

Below-LLOQ observations are handled as pharmacometric tools do by default (Beal's M1:
left out of the likelihood), and the choice and the count are recorded in the fit.
Missing DV on an observation row is treated as MDV = 1 (NONMEM's reading of '.').
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from calibration.errors import CalibrationError, NoObservationsError
from twin.dataset import read_csv_text, read_dataset
from twin.userfile import MAX_DATASET_BYTES, read_user_text

LAB_COLUMNS = {"chip", "time_h", "event"}
NONMEM_COLUMNS = {"id", "time"}


@dataclass
class Selection:
    """What was fitted, written into the fit record."""

    path: str
    format: str
    n_rows: int
    n_observations: int
    blq_method: str = "M1: observations below the LLOQ left out of the likelihood"
    n_blq_dropped: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def detect_format(path: str | Path) -> str:
    """'lab' or 'nonmem' from the header; an unreadable file (not UTF-8, a directory, empty,
    header only, a repeated column) is one CalibrationError line."""
    text = read_user_text(path, "dataset", max_bytes=MAX_DATASET_BYTES, error=CalibrationError)
    header = read_csv_text(text, Path(path), CalibrationError)
    columns = {str(c).strip().lower() for c in header.columns}
    if LAB_COLUMNS <= columns:
        return "lab"
    if NONMEM_COLUMNS <= columns:
        return "nonmem"
    raise CalibrationError(
        f"{path}: cannot tell the dataset's format from its columns ({', '.join(header.columns)}); a NONMEM-style "
        "dataset needs ID and TIME (plus AMT, EVID, DV, …), a lab dataset needs chip, time_h and event"
    )


def load_nonmem(path: str | Path) -> tuple[pd.DataFrame, Selection]:
    """Read, apply the BLQ rule (a BLQ column, or DV < LLOQ with an LLOQ column), count what is fitted."""
    data = read_dataset(path)
    observed = (data["EVID"] == 0) & (data["MDV"] == 0)
    missing = observed & data["DV"].isna()
    data.loc[missing, "MDV"] = 1
    blq = _below_lloq(data) & observed & ~missing
    data.loc[blq, "MDV"] = 1
    n_obs = int(((data["EVID"] == 0) & (data["MDV"] == 0)).sum())
    if n_obs == 0:
        reason = "all of them are below the LLOQ" if blq.any() else "it has no observation rows (EVID 0, MDV 0)"
        raise NoObservationsError(f"{path}: nothing to fit: {reason}; check the DV and LLOQ columns")
    selection = Selection(str(path), "nonmem", len(data), n_obs, n_blq_dropped=int(blq.sum()))
    if missing.any():
        selection.notes.append(f"{int(missing.sum())} observation rows without DV were treated as MDV = 1")
    return data, selection


def _below_lloq(data: pd.DataFrame) -> pd.Series:
    columns = {str(c).lower(): c for c in data.columns}
    if "blq" in columns:
        return data[columns["blq"]].fillna(0).astype(float) > 0
    if "lloq" in columns:
        return data["DV"] < data[columns["lloq"]]
    return pd.Series(np.zeros(len(data), dtype=bool), index=data.index)
