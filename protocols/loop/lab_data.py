"""Store → lab dataset (``calibration.io.lab``), in memory: what the calibrate step fits.

Rows per chip of the run, times in hours since the run started: confirmed doses
(``DoseEvent``: the device-reported volume × stock), samples, media changes that were
carried out, assay results already imported (``imported_utc_s`` ≤ now; written just before
their sample's row, so they see the medium before it is removed), and TEER as
``viability``: each reading divided by the mean of that chip's readings before its first
dose (the usual pre-dose normalisation). The store does not import calibration; this
module sits in protocols, above both.
"""

from __future__ import annotations

import json

from sqlalchemy import Engine, select

from calibration.io.lab import LabData, lab_dataset
from store.repositories import runs
from store.schema import AssayResult, Channel, Chip, DoseEvent, Reading, Sample, Step

ORDER = {"observation": 0, "sample": 1, "dose": 2, "media_change": 3}


def lab_rows(engine: Engine, run_id: int, now_utc_s: float, chips: list[str] | None = None) -> list[dict]:
    with engine.connect() as c:
        run = runs.get(c, run_id)
        t0 = run.started_utc_s or 0.0
        chip_rows = {
            r.id: r
            for r in c.execute(select(Chip).where(Chip.rig_id == run.rig_id)).all()
            if chips is None or r.name in chips
        }
        rows: list[dict] = []

        def add(chip_id: int, t_s: float, event: str, **values: object) -> None:
            if chip_id in chip_rows:
                rows.append(
                    {"chip": chip_rows[chip_id].name, "time_h": max(t_s - t0, 0.0) / 3600.0, "event": event, **values}
                )

        for d in c.execute(select(DoseEvent).where(DoseEvent.run_id == run_id)).all():
            add(d.chip_id, d.t_utc_s, "dose", amount_nmol=d.amount_nmol, volume_ml=d.volume_ml)
        for s in c.execute(select(Sample).where(Sample.run_id == run_id)).all():
            add(s.chip_id, s.t_utc_s, "sample", volume_ml=s.volume_ml)
            for a in c.execute(
                select(AssayResult).where(AssayResult.sample_id == s.id, AssayResult.imported_utc_s <= now_utc_s)
            ).all():
                if a.value is not None and not a.below_lloq:
                    add(s.chip_id, s.t_utc_s, "observation", observable=a.analyte, value=a.value, unit=a.unit)
        by_name = {r.name: i for i, r in chip_rows.items()}
        for step in c.execute(
            select(Step).where(Step.run_id == run_id, Step.kind == "media_change", Step.state == "done")
        ).all():
            detail = json.loads(step.detail_json or "{}")
            for chip in detail.get("applied", []):
                if chip in by_name:
                    add(
                        by_name[chip],
                        detail["t_utc_s"],
                        "media_change",
                        volume_ml=detail["volume_ml"],
                        conc_um=detail.get("conc_um", 0.0),
                    )
        rows += _viability(c, run.rig_id, chip_rows, rows, t0, now_utc_s)
    rows.sort(key=lambda r: (r["chip"], r["time_h"], ORDER[r["event"]]))
    constants = {
        r.name: {"v_medium_ml": r.v_medium_ml, "v_cell_ml": r.v_cell_ml, "n_cells_million": r.n_cells_million}
        for r in chip_rows.values()
    }
    seen: set[str] = set()
    for row in rows:
        if row["chip"] not in seen:
            row.update(constants[row["chip"]])
            seen.add(row["chip"])
    return rows


def _viability(c, rig_id: int, chip_rows: dict, rows: list[dict], t0: float, now_s: float) -> list[dict]:
    first_dose_h = {}
    for row in rows:
        if row["event"] == "dose":
            first_dose_h[row["chip"]] = min(first_dose_h.get(row["chip"], row["time_h"]), row["time_h"])
    out = []
    channels = c.execute(select(Channel).where(Channel.rig_id == rig_id, Channel.quantity.like("teer.%"))).all()
    for channel in channels:
        if channel.chip_id not in chip_rows:
            continue
        name = chip_rows[channel.chip_id].name
        readings = c.execute(
            select(Reading.t_utc_s, Reading.value)
            .where(
                Reading.channel_id == channel.id, Reading.quality == 0, Reading.t_utc_s >= t0, Reading.t_utc_s <= now_s
            )
            .order_by(Reading.t_utc_s)
        ).all()
        dose_h = first_dose_h.get(name)
        before = [v for t, v in readings if dose_h is None or (t - t0) / 3600.0 <= dose_h]
        if not before or dose_h is None:
            continue
        baseline = sum(before) / len(before)
        out += [
            {
                "chip": name,
                "time_h": (t - t0) / 3600.0,
                "event": "observation",
                "observable": "viability",
                "value": v / baseline,
                "unit": "dimensionless",
            }
            for t, v in readings
            if (t - t0) / 3600.0 > dose_h
        ]
    return out


def run_dataset(engine: Engine, run_id: int, now_utc_s: float, chips: list[str] | None = None) -> tuple[LabData, int]:
    """The run's lab dataset so far, in memory (no file): chips by name, and the number of rows."""
    rows = lab_rows(engine, run_id, now_utc_s, chips)
    return lab_dataset(rows, f"run {run_id}"), len(rows)
