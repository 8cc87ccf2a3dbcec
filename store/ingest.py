"""Bulk ingest of readings: validated per batch, one transaction per batch, idempotent.

A batch is checked completely before anything of it is written, so a bad reading rejects
its batch with a message and leaves every earlier batch (and everything stored) intact.
Re-sending a batch after a crash stores nothing twice: (channel, time) is the key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntFlag
from itertools import islice
from typing import Callable, Iterable, Iterator, NamedTuple

import pint
from sqlalchemy import Connection, Engine, select

from store.errors import InvalidReading
from store.schema import Channel

DEFAULT_BATCH_SIZE = 10_000
_ureg = pint.get_application_registry()  # the program's one registry (see twin.units)


class Quality(IntFlag):
    """Quality flags of a reading; 0 means a good reading."""

    OK = 0
    STALE = 1
    OUT_OF_RANGE = 2
    DEVICE_ERROR = 4
    SUBSTITUTED = 8


class ReadingIn(NamedTuple):
    """One reading to store; ``unit`` None means "already in the channel's unit"."""

    channel_id: int
    t_utc_s: float
    value: float
    quality: int = 0
    unit: str | None = None


@dataclass
class IngestReport:
    received: int = 0
    stored: int = 0
    batches: int = 0

    @property
    def duplicates_skipped(self) -> int:
        return self.received - self.stored


def ingest_readings(
    engine: Engine,
    readings: Iterable[ReadingIn | tuple],
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    with_first_batch: Callable[[Connection], object] | None = None,
) -> IngestReport:
    """Store readings in batches of ``batch_size``, each batch in one transaction.

    ``with_first_batch`` writes more in the first batch's transaction (the poll ledger's gaps
    commit with the readings they follow: both or neither)."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    channels = _ChannelUnits(engine)
    insert_sql = _insert_statement(engine)
    report = IngestReport()
    for batch in _batches(readings, batch_size):
        rows = channels.validated_rows(batch, report.received)
        with engine.begin() as connection:
            report.stored += _execute_many(connection, insert_sql, rows)
            if with_first_batch is not None and report.batches == 0:
                with_first_batch(connection)
        report.received += len(rows)
        report.batches += 1
    return report


def _batches(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _insert_statement(engine: Engine) -> str:
    marker = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    return (
        f"INSERT INTO reading (channel_id, t_utc_s, value, quality) VALUES ({marker}, {marker}, {marker}, {marker}) "
        "ON CONFLICT (channel_id, t_utc_s) DO NOTHING"
    )


def _execute_many(connection: Connection, sql: str, rows: list[tuple]) -> int:
    # The driver's own executemany: no per-row ORM objects on the hot path.
    cursor = connection.connection.driver_connection.cursor()
    try:
        cursor.executemany(sql, rows)
        return cursor.rowcount if cursor.rowcount is not None and cursor.rowcount >= 0 else len(rows)
    finally:
        cursor.close()


class _ChannelUnits:
    """Each channel's unit, and the conversion from a reading's unit to it (cached)."""

    def __init__(self, engine: Engine) -> None:
        with engine.connect() as connection:
            self.units = dict(connection.execute(select(Channel.id, Channel.unit)).all())
            self.names = dict(connection.execute(select(Channel.id, Channel.name)).all())
        self._converters: dict[tuple[int, str], tuple[float, float]] = {}

    def validated_rows(self, batch: list, offset: int) -> list[tuple]:
        """Rows ready for the driver; the common case (known channel, finite, own unit) is inlined."""
        rows = []
        units, isfinite = self.units, math.isfinite
        for i, reading in enumerate(batch):
            channel_id, t_utc_s, value, quality, unit = reading if len(reading) == 5 else ReadingIn(*reading)
            try:
                fast = unit is None and channel_id in units and isfinite(t_utc_s) and isfinite(value)
            except TypeError:
                fast = False
            if fast:
                rows.append((int(channel_id), float(t_utc_s), float(value), int(quality)))
            else:
                rows.append(self.validated_row(ReadingIn(*reading), offset + i))
        return rows

    def validated_row(self, reading: ReadingIn, position: int) -> tuple:
        channel_id, t_utc_s, value, quality, unit = reading
        if channel_id not in self.units:
            raise InvalidReading(
                f"reading #{position + 1}: channel id {channel_id} does not exist; "
                "create the channel (rig file) before storing its readings"
            )
        where = f"reading #{position + 1} of channel {self.names[channel_id]!r} at t={t_utc_s!r}"
        if not _finite(t_utc_s):
            raise InvalidReading(f"{where}: the time is not a finite number; readings need a clock time in UTC seconds")
        if not _finite(value):
            raise InvalidReading(
                f"{where}: the value is {value!r}; a failed measurement is stored with a quality flag "
                "(Quality.DEVICE_ERROR) and the last good value, or left out — never as NaN"
            )
        if unit is not None and unit != self.units[channel_id]:
            scale, offset = self._converter(channel_id, unit, where)
            value = float(value) * scale + offset
        return (channel_id, float(t_utc_s), float(value), int(quality))

    def _converter(self, channel_id: int, unit: str, where: str) -> tuple[float, float]:
        key = (channel_id, unit)
        if key not in self._converters:
            target = self.units[channel_id]
            try:  # two points give scale and offset, which also covers °C ↔ K
                zero = _ureg.Quantity(0.0, unit).to(target).magnitude
                one = _ureg.Quantity(1.0, unit).to(target).magnitude
            except (pint.DimensionalityError, pint.UndefinedUnitError, AttributeError, ValueError):
                raise InvalidReading(
                    f"{where}: unit {unit!r} does not convert to the channel's unit {target!r}; "
                    "send the reading in a unit of the same kind, or fix the channel in the rig file"
                ) from None
            self._converters[key] = (float(one - zero), float(zero))
        return self._converters[key]


def _finite(number: object) -> bool:
    try:
        return math.isfinite(number)  # type: ignore[arg-type]
    except TypeError:
        return False
