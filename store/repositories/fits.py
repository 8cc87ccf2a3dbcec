"""Fits: one row per fit (a calibrate step of a run, or a fit stored by hand), its record as JSON.

The record itself is calibration's (``calibration.io.record.FitRecord``); it reaches the store
already serialised (``NewFit.record_json``), so the store never imports calibration.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, func, insert, select
from sqlmodel import col

from store.repositories.reading import new_id, read
from store.schema import Fit


@dataclass(frozen=True)
class NewFit:
    """What a fit row holds; the figures a list shows are real columns, the rest is ``record_json``."""

    model: str
    model_version: str
    method: str
    record_json: str
    minus2ll: float | None
    aic: float | None
    bic: float | None
    converged: bool
    wall_time_s: float
    created_utc_s: float
    warnings: list[str] = field(default_factory=list)
    run_id: int | None = None
    step_index: int | None = None
    chips: tuple[str, ...] = ()
    n_rows: int | None = None


def add(connection: Connection, fit: NewFit) -> int:
    selection = {"step": fit.step_index, "rows": fit.n_rows, "chips": list(fit.chips)}
    return new_id(
        connection.execute(
            insert(Fit).values(
                run_id=fit.run_id,
                step_index=fit.step_index,
                model=fit.model,
                model_version=fit.model_version,
                method=fit.method,
                data_selection_json=json.dumps(selection),
                record_json=fit.record_json,
                minus2ll=fit.minus2ll,
                aic=fit.aic,
                bic=fit.bic,
                converged=fit.converged,
                warnings_json=json.dumps(fit.warnings),
                wall_time_s=fit.wall_time_s,
                created_utc_s=fit.created_utc_s,
            )
        )
    )


def for_step(source: Engine | Connection, run_id: int, step_index: int) -> Fit | None:
    """The fit a run's step made (a resumed step finds it instead of fitting again)."""
    return _one(
        read(
            source,
            select(Fit)
            .where(col(Fit.run_id) == run_id, col(Fit.step_index) == step_index)
            .order_by(col(Fit.id).desc())
            .limit(1),
        ).first()
    )


def latest(source: Engine | Connection, run_id: int) -> Fit | None:
    return _one(
        read(
            source,
            select(Fit)
            .where(col(Fit.run_id) == run_id)
            .order_by(col(Fit.created_utc_s).desc(), col(Fit.id).desc())
            .limit(1),
        ).first()
    )


def get(source: Engine | Connection, fit_id: int) -> Fit | None:
    return _one(read(source, select(Fit).where(col(Fit.id) == fit_id)).first())


def latest_id(source: Engine | Connection, run_id: int) -> int | None:
    return read(source, select(func.max(col(Fit.id))).where(col(Fit.run_id) == run_id)).scalar()


def of_run(source: Engine | Connection, run_id: int) -> list[Fit]:
    return [
        Fit(**r._mapping)
        for r in read(source, select(Fit).where(col(Fit.run_id) == run_id).order_by(col(Fit.id))).all()
    ]


def listing(source: Engine | Connection) -> list[Fit]:
    """Every fit, newest first (the record JSON left out: a list does not need it)."""
    columns = [c for c in Fit.__table__.columns if c.name != "record_json"]  # type: ignore[attr-defined]
    query = select(*columns).order_by(col(Fit.created_utc_s).desc(), col(Fit.id).desc())
    return [Fit(**r._mapping) for r in read(source, query).all()]


def records_of_model(source: Engine | Connection, model: str, run_id: int | None) -> list[tuple[int, str]]:
    """(fit id, record JSON) of one model's fits of a run (or of fits outside any run), oldest first."""
    query = (
        select(col(Fit.id), col(Fit.record_json))
        .where(col(Fit.model) == model)
        .order_by(col(Fit.created_utc_s), col(Fit.id))
    )
    query = query.where(col(Fit.run_id).is_(None) if run_id is None else col(Fit.run_id) == run_id)
    return [(int(r[0]), str(r[1])) for r in (tuple(row) for row in read(source, query).all())]


def _one(row: object) -> Fit | None:
    return None if row is None else Fit(**row._mapping)  # type: ignore[attr-defined]
