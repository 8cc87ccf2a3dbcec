"""Model review: fits as records (calibration.io.record.FitRecord documents), their parameter tables,
correlations, learning curves across a run, and the exports (fit JSON, readings CSV/Parquet)."""

from __future__ import annotations

import io
import json
import math
from types import SimpleNamespace

import pandas as pd
from sqlalchemy import Engine, select

from calibration.io.record import chip_documents
from store.repositories import fits as fit_records
from store.repositories import runs as run_records
from store.schema import Channel, Chip, Fit, Reading
from ui.panel.errors import PanelError
from ui.panel.lab import _frame, utc

MAX_EXPORT_ROWS = 2_000_000  # beyond this, use the Python API (store.queries) or the CLI


def fits(engine: Engine) -> pd.DataFrame:
    columns = [
        "id",
        "run_id",
        "model",
        "model_version",
        "method",
        "converged",
        "minus2ll",
        "aic",
        "bic",
        "wall_time_s",
        "created_utc_s",
    ]
    frame = pd.DataFrame([{c: getattr(f, c) for c in columns} for f in fit_records.listing(engine)], columns=columns)
    frame["created"] = utc(frame["created_utc_s"].astype(float))
    return frame


def fit_row(engine: Engine, fit_id: int) -> Fit:
    row = fit_records.get(engine, fit_id)
    if row is None:
        raise PanelError(f"there is no fit {fit_id}")
    return row


def record_of(row) -> dict:
    try:
        return json.loads(row.record_json or "{}")
    except json.JSONDecodeError:
        return {}


def summary_of(row, record: dict, chip: str = ""):
    """converged, −2LL, AIC and warnings of what is shown: the row, or one chip's record of it."""
    if not chip:
        return row
    return SimpleNamespace(
        converged=bool(record.get("converged")),
        minus2ll=_number(record.get("minus2ll")),
        aic=_number(record.get("aic")),
        warnings_json=json.dumps(record.get("warnings") or []),
    )


def warnings_of(row, record: dict) -> list[str]:
    """Every warning the fit carries, from the record and the row (never filtered)."""
    found = list(record.get("warnings") or [])
    try:
        found += [w for w in json.loads(row.warnings_json or "[]") if w not in found]
    except json.JSONDecodeError:
        found.append(f"the fit's warnings could not be read: {row.warnings_json!r}")
    if not row.converged and not any("converge" in w for w in found):
        found.insert(0, "the fit did not converge")
    return found


def _number(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def parameter_table(record: dict) -> pd.DataFrame:
    """θ with SE, 95 % interval and RSE; σ and ω rows follow (their intervals when the record has them)."""
    rows = []
    for name, theta in (record.get("theta") or {}).items():
        ci = theta.get("ci95") or [None, None]
        rows.append(
            {
                "kind": "θ",
                "parameter": name,
                "estimate": _number(theta.get("estimate")),
                "se": _number(theta.get("se")),
                "ci95 low": _number(ci[0]),
                "ci95 high": _number(ci[1]),
                "rse %": _number(theta.get("rse_percent")),
                "interval": "none (covariance step failed)" if theta.get("ci95") is None else "",
            }
        )
    for name, value in (record.get("sigma") or {}).items():
        rows.append({"kind": "σ", "parameter": name, "estimate": _number(value), "interval": "point estimate only"})
    for name, omega in (record.get("omega") or {}).items():
        omega = omega if isinstance(omega, dict) else {"estimate": omega}
        rows.append({"kind": "ω", "parameter": name, "estimate": _number(omega.get("estimate", omega.get("sd")))})
    columns = ["kind", "parameter", "estimate", "se", "ci95 low", "ci95 high", "rse %", "interval"]
    return pd.DataFrame(rows, columns=columns)


def correlation(record: dict) -> tuple[list[str], list[list[float]] | None]:
    block = record.get("correlation") or {}
    return list(block.get("names") or []), block.get("matrix")


def learning_frame(engine: Engine, run_id: int | None, model: str, chip: str = "") -> pd.DataFrame:
    """Estimates and intervals of every θ across the fits of one run (same model), oldest first;
    with ``chip``, that chip's record of each fit (a calibrate step fits every chip)."""
    rows = []
    for number, (fit_id, text) in enumerate(fit_records.records_of_model(engine, model, run_id), start=1):
        record = json.loads(text or "{}")
        record = chip_documents(record).get(chip, record) if chip else record
        for name, theta in (record.get("theta") or {}).items():
            ci = theta.get("ci95") or [theta.get("estimate")] * 2
            rows.append(
                {
                    "fit": number,
                    "fit_id": fit_id,
                    "parameter": name,
                    "estimate": theta.get("estimate"),
                    "low": ci[0],
                    "high": ci[1],
                }
            )
    return pd.DataFrame(rows, columns=["fit", "fit_id", "parameter", "estimate", "low", "high"])


def fit_json(row) -> str:
    return json.dumps(record_of(row), indent=2)


def run_span(engine: Engine, run_id: int) -> tuple[int, float | None, float | None]:
    """(rig id, start, end) of a run; None where the run has not started or ended."""
    run = run_records.get(engine, run_id)
    return run.rig_id, run.started_utc_s, run.ended_utc_s


def readings(
    engine: Engine, channel_ids: list[int], start_utc_s: float | None = None, end_utc_s: float | None = None
) -> pd.DataFrame:
    """Raw readings (not downsampled) of channels in [start, end), with chip and channel names."""
    query = (
        select(
            Chip.name.label("chip"),
            Channel.name.label("channel"),
            Channel.unit,
            Reading.t_utc_s,
            Reading.value,
            Reading.quality,
        )
        .join(Channel, Channel.id == Reading.channel_id)
        .join(Chip, Chip.id == Channel.chip_id, isouter=True)
        .where(Reading.channel_id.in_(channel_ids))
        .order_by(Reading.channel_id, Reading.t_utc_s)
        .limit(MAX_EXPORT_ROWS + 1)
    )
    if start_utc_s is not None:
        query = query.where(Reading.t_utc_s >= start_utc_s)
    if end_utc_s is not None:
        query = query.where(Reading.t_utc_s < end_utc_s)
    frame = _frame(engine, query)
    if len(frame) > MAX_EXPORT_ROWS:
        raise ValueError(f"more than {MAX_EXPORT_ROWS:,} readings: narrow the time window or the channels")
    frame["time_utc"] = utc(frame["t_utc_s"].astype(float))
    return frame


def rig_channel_ids(engine: Engine, rig_id: int) -> list[int]:
    with engine.connect() as connection:
        return list(connection.execute(select(Channel.id).where(Channel.rig_id == rig_id)).scalars())


def to_csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def to_parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, engine="pyarrow")
    return buffer.getvalue()
