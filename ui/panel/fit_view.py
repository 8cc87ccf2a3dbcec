"""Model review of one chip's fit: its record, the run's data up to the fit, and the review numbers.

A calibrate step of a run stores one Fit row for all its chips: the record of the first chip
at the top level and every chip's record under ``data_selection.chips``. The data are the
run's lab dataset as the calibrate step saw it (``protocols.export_lab``, up to the fit's
time), so data, prediction and residuals are exactly what the fit was judged on.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from sqlalchemy import Engine

from calibration.errors import CalibrationError
from calibration.lab import ChipData, read_lab_dataset
from calibration.profile import Profile
from calibration.record import FitRecord
from calibration.review import FitView, profile_chip_fit, review_chip_fit
from protocols.export_lab import write_lab_dataset
from ui.panel.errors import PanelError


def chip_records(record: dict) -> dict[str, dict]:
    """chip → its record document; a fit of one data set (no chips) is keyed ''."""
    chips = (record.get("data_selection") or {}).get("chips")
    return dict(chips) if isinstance(chips, dict) and chips else {"": record}


def chip_data(engine: Engine, run_id: int, until_utc_s: float, chip: str) -> ChipData:
    """The chip's lab data of the run as a calibrate step at ``until_utc_s`` saw it."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "lab.csv"
        write_lab_dataset(engine, run_id, until_utc_s, path, [chip])
        try:
            data = read_lab_dataset(path)
        except CalibrationError as exc:
            raise PanelError(f"the data of chip {chip} in run {run_id} cannot be read back: {exc}") from None
    if chip not in data:
        raise PanelError(f"run {run_id} has no data of chip {chip} up to this fit")
    return data[chip]


def review(engine: Engine, row, chip: str, document: dict) -> FitView:
    """Data against prediction (with its band) and weighted residuals of one chip's fit."""
    data = _data(engine, row, chip)
    try:
        return review_chip_fit(data, FitRecord.from_dict(document))
    except CalibrationError as exc:
        raise PanelError(str(exc)) from None


def profile(engine: Engine, row, chip: str, document: dict, name: str) -> Profile:
    data = _data(engine, row, chip)
    try:
        return profile_chip_fit(data, FitRecord.from_dict(document), name)
    except CalibrationError as exc:
        raise PanelError(str(exc)) from None


def _data(engine: Engine, row, chip: str) -> ChipData:
    if row.run_id is None or not chip:
        raise PanelError("this fit was not made on a run's chips, so the store holds no data to plot it against; "
                         "its parameter table and correlations are below")
    return chip_data(engine, int(row.run_id), float(row.created_utc_s), chip)
