"""A run's assays, doses and samples (and readings, and its lab dataset) as flat tables for CSV / Parquet.

Each column's unit is in its name (``amount_nmol``) or in a ``unit`` column beside the value;
times come both as UTC seconds and as ISO timestamps.
"""

from __future__ import annotations

import math

import pandas as pd
from sqlalchemy import Engine, select

from store.repositories import runs as run_records
from store.schema import AssayResult, Chip, Command, DoseEvent, Sample
from ui.report.errors import ReportError
from ui.report.kinds import Format, What


def table(engine: Engine, run_id: int, what: What) -> pd.DataFrame:
    """One of the run's tables, oldest first; ReportError when the store has no such run."""
    try:
        run = run_records.get(engine, run_id)
    except run_records.UnknownRun:
        raise ReportError(f"no run {run_id} in this store; check the run number and --db") from None
    if what is What.LAB:
        from calibration.io.lab import COLUMNS
        from protocols.loop.lab_data import lab_rows

        # everything recorded so far: a run's clock may be accelerated past the wall clock
        until = run.ended_utc_s if run.ended_utc_s is not None else math.inf
        return pd.DataFrame(lab_rows(engine, run_id, until), columns=list(COLUMNS))
    if what is What.READINGS:
        from ui.panel.review import readings, rig_channel_ids  # the panel's own export, same columns

        frame = readings(engine, rig_channel_ids(engine, run.rig_id), run.started_utc_s, run.ended_utc_s)
        return frame.drop(columns=["time_utc"]).assign(time_utc=_iso(frame["t_utc_s"]))
    query = {What.ASSAYS: _assays, What.DOSES: _doses, What.SAMPLES: _samples}[what](run_id)
    with engine.connect() as c:
        result = c.execute(query)
        frame = pd.DataFrame(result.all(), columns=list(result.keys()))
    return frame.assign(time_utc=_iso(frame["t_utc_s"]))


def _doses(run_id: int):
    return (
        select(
            DoseEvent.id.label("dose_id"),
            Chip.name.label("chip"),
            DoseEvent.drug,
            DoseEvent.t_utc_s,
            DoseEvent.amount_nmol,
            DoseEvent.volume_ml,
            Command.idempotency_key.label("intent_key"),
            Command.state.label("intent_state"),
            Command.requested_amount.label("requested_amount"),
            Command.device_reported_amount.label("device_reported_amount"),
            Command.amount_unit.label("amount_unit"),
        )
        .join(Chip, Chip.id == DoseEvent.chip_id)
        .join(Command, Command.id == DoseEvent.command_id, isouter=True)
        .where(DoseEvent.run_id == run_id)
        .order_by(DoseEvent.t_utc_s, DoseEvent.id)
    )


def _samples(run_id: int):
    return (
        select(
            Sample.id.label("sample_id"),
            Sample.label,
            Chip.name.label("chip"),
            Sample.t_utc_s,
            Sample.volume_ml,
            Sample.assay,
        )
        .join(Chip, Chip.id == Sample.chip_id)
        .where(Sample.run_id == run_id)
        .order_by(Sample.t_utc_s, Sample.id)
    )


def _assays(run_id: int):
    return (
        select(
            AssayResult.id.label("assay_id"),
            Sample.label.label("sample"),
            Chip.name.label("chip"),
            Sample.t_utc_s,
            AssayResult.analyte,
            AssayResult.value,
            AssayResult.unit,
            AssayResult.below_lloq,
            AssayResult.lloq,
            AssayResult.source_file,
            AssayResult.source_sha256,
            AssayResult.imported_utc_s,
        )
        .join(Sample, Sample.id == AssayResult.sample_id)
        .join(Chip, Chip.id == Sample.chip_id)
        .where(Sample.run_id == run_id)
        .order_by(Sample.t_utc_s, Sample.id, AssayResult.analyte)
    )


def _iso(seconds: pd.Series) -> pd.Series:
    return pd.to_datetime(seconds.astype(float), unit="s", utc=True)


def to_bytes(frame: pd.DataFrame, fmt: Format) -> bytes:
    if fmt is Format.PARQUET:
        import io

        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False, engine="pyarrow")
        return buffer.getvalue()
    return frame.to_csv(index=False).encode()
