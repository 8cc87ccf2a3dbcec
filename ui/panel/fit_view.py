"""Model review of one chip's fit: its record, the run's data up to the fit, and the review numbers.

A calibrate step of a run stores one Fit row for all its chips: the record of the first chip
at the top level and every chip's record under ``chips``. The data are the
run's lab dataset as the calibrate step saw it (``protocols.loop.lab_data``, up to the fit's
time), so data, prediction and residuals are exactly what the fit was judged on.
"""

from __future__ import annotations

import json
from typing import Callable

from sqlalchemy import Engine, func, select

from calibration.errors import CalibrationError
from calibration.io.lab import ChipData
from calibration.io.record import FitRecord, chip_documents
from calibration.uncertainty.profile import Profile, optimum, profile_lockstep
from calibration.uncertainty.review import FitView, record_problem, review_chip_fit
from protocols.loop.lab_data import run_dataset
from store.repositories import fits, runs
from store.schema import AssayResult, DoseEvent, Sample
from ui.panel.errors import PanelError


def chip_records(record: dict) -> dict[str, dict]:
    """chip → its record document; a fit of one data set (no chips) is keyed ''."""
    return chip_documents(record)


def chip_data(engine: Engine, run_id: int, until_utc_s: float, chip: str) -> ChipData:
    """The chip's lab data of the run as a calibrate step at ``until_utc_s`` saw it."""
    try:
        data, _ = run_dataset(engine, run_id, until_utc_s, [chip])
    except CalibrationError as exc:
        raise PanelError(f"the data of chip {chip} in run {run_id} cannot be read: {exc}") from None
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


ProfileTask = Callable[[Callable[[], bool] | None, Callable[[int, int], None] | None], Profile]


def profile_task(engine: Engine, row, chip: str, document: dict, name: str) -> ProfileTask:
    """The profile likelihood of ``name`` as a task ``(should_stop, progress) -> Profile``: the data
    are read and the problem built here (errors at once, in the caller's thread); the task only
    computes, so it may run in a worker thread (``ui.panel.profile_worker``) and stop between scoring
    rounds. A chip fit's points are fitted together in lockstep (``profile_lockstep``)."""
    data = _data(engine, row, chip)
    try:
        record = FitRecord.from_dict(document)
        if name not in record.theta:
            raise CalibrationError(f"{name!r} was not estimated in this fit; estimated: {', '.join(record.theta)}")
        problem = record_problem(data, record)
        x_hat = optimum(problem, record)
    except CalibrationError as exc:
        raise PanelError(str(exc)) from None

    def compute(
        should_stop: Callable[[], bool] | None = None, progress: Callable[[int, int], None] | None = None
    ) -> Profile:
        try:
            return profile_lockstep(problem, x_hat, name, should_stop=should_stop, progress=progress)
        except CalibrationError as exc:
            raise PanelError(str(exc)) from None

    return compute


def profile(engine: Engine, row, chip: str, document: dict, name: str) -> Profile:
    """The profile likelihood of ``name``, computed in the caller's thread (the page uses a worker)."""
    return profile_task(engine, row, chip, document, name)(None, None)


def _data(engine: Engine, row, chip: str) -> ChipData:
    if row.run_id is None or not chip:
        raise PanelError(
            "this fit was not made on a run's chips, so the store holds no data to plot it against; "
            "its parameter table and correlations are below"
        )
    return chip_data(engine, int(row.run_id), float(row.created_utc_s), chip)


def forecast_key(engine: Engine, run_id: int) -> tuple:
    """Changes when a forecast must be redrawn: a new fit, dose or assay result (one cheap query each)."""
    with engine.connect() as c:
        fit = fits.latest_id(c, run_id)
        doses = c.execute(select(func.count(DoseEvent.id)).where(DoseEvent.run_id == run_id)).scalar()
        assays = c.execute(
            select(func.count(AssayResult.id))
            .join(Sample, Sample.id == AssayResult.sample_id)
            .where(Sample.run_id == run_id)
        ).scalar()
    return run_id, fit, doses, assays


def forecast(engine: Engine, run_id: int, chip: str, now_utc_s: float) -> tuple[int, FitView] | None:
    """The run's latest fit of ``chip`` drawn to ``now`` over all the chip's data so far (data that
    arrived after the fit show how well it forecast them); None before the first fit of the chip."""
    with engine.connect() as c:
        row = fits.latest(c, run_id)
        started = runs.get(c, run_id).started_utc_s
    if row is None or started is None:
        return None
    document = chip_records(json.loads(row.record_json or "{}")).get(chip)
    if document is None:
        return None
    now_utc_s = max(now_utc_s, float(row.created_utc_s))  # at least what the fit itself saw
    data = chip_data(engine, run_id, now_utc_s, chip)
    until_h = max((now_utc_s - started) / 3600.0, max(data.times_h, default=0.0))
    try:
        return int(row.id), review_chip_fit(data, FitRecord.from_dict(document), until_h=until_h)
    except CalibrationError as exc:
        raise PanelError(str(exc)) from None
