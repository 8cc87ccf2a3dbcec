"""Bulk ingest: batches, idempotency, unit conversion, and rejected input that loses nothing."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from store.errors import InvalidReading
from store.ingest import Quality, ReadingIn, ingest_readings


def _stored(engine) -> list[tuple]:
    with engine.connect() as connection:
        return [
            tuple(r)
            for r in connection.execute(
                text("SELECT channel_id, t_utc_s, value, quality FROM reading ORDER BY channel_id, t_utc_s")
            )
        ]


def test_batches_store_every_reading_once(engine, channels):
    readings = [ReadingIn(channels["o2"], 1000.0 + i, 80.0 - i * 0.01) for i in range(2500)]
    report = ingest_readings(engine, readings, batch_size=1000)
    assert (report.received, report.stored, report.batches) == (2500, 2500, 3)
    again = ingest_readings(engine, readings[:1500], batch_size=700)
    assert again.stored == 0 and again.duplicates_skipped == 1500
    rows = _stored(engine)
    assert len(rows) == 2500 and rows[-1][1:3] == (3499.0, pytest.approx(80.0 - 2499 * 0.01))


def test_nan_rejects_its_batch_and_keeps_earlier_batches(engine, channels):
    good = [ReadingIn(channels["o2"], float(i), 90.0) for i in range(10)]
    bad = [ReadingIn(channels["o2"], 10.0 + i, 90.0) for i in range(10)]
    bad[3] = ReadingIn(channels["o2"], 13.0, math.nan)
    with pytest.raises(InvalidReading) as caught:
        ingest_readings(engine, good + bad, batch_size=10)
    message = str(caught.value)
    assert "reading #14" in message and "'o2'" in message and "NaN" not in message.split(":")[0]
    assert "quality flag" in message
    assert [r[1] for r in _stored(engine)] == [float(i) for i in range(10)]


def test_compatible_units_are_converted_to_the_channel_unit(engine, channels):
    ingest_readings(
        engine,
        [
            ReadingIn(channels["pressure"], 1.0, 25.0, 0, "kPa"),
            ReadingIn(channels["temperature"], 1.0, 310.15, 0, "kelvin"),
            ReadingIn(channels["temperature"], 2.0, 37.0),
        ],
    )
    values = {(r[0], r[1]): r[2] for r in _stored(engine)}
    assert values[(channels["pressure"], 1.0)] == pytest.approx(250.0)
    assert values[(channels["temperature"], 1.0)] == pytest.approx(37.0)
    assert values[(channels["temperature"], 2.0)] == 37.0


def test_a_unit_that_does_not_match_its_channel_is_refused(engine, channels):
    with pytest.raises(InvalidReading, match=r"'mL/h' does not convert to the channel's unit 'mbar'"):
        ingest_readings(engine, [ReadingIn(channels["pressure"], 1.0, 3.0, 0, "mL/h")])
    assert _stored(engine) == []


def test_unknown_channel_and_non_numeric_time_are_refused(engine, channels):
    with pytest.raises(InvalidReading, match="channel id 999 does not exist"):
        ingest_readings(engine, [ReadingIn(999, 1.0, 3.0)])
    with pytest.raises(InvalidReading, match="time is not a finite number"):
        ingest_readings(engine, [ReadingIn(channels["o2"], "noon", 3.0)])


def test_quality_flags_are_stored(engine, channels):
    ingest_readings(engine, [ReadingIn(channels["o2"], 5.0, 71.0, Quality.STALE | Quality.DEVICE_ERROR)])
    assert _stored(engine)[0][3] == int(Quality.STALE | Quality.DEVICE_ERROR)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    times=st.lists(st.integers(min_value=0, max_value=200), min_size=1, max_size=150),
    batch_size=st.integers(min_value=1, max_value=60),
)
def test_any_batching_stores_exactly_the_distinct_readings(engine, channels, times, batch_size):
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM reading"))
    readings = [ReadingIn(channels["o2"], float(t), float(t) / 2) for t in times]
    report = ingest_readings(engine, readings, batch_size=batch_size)
    assert report.stored == len(set(times))
    assert [r[1] for r in _stored(engine)] == sorted(float(t) for t in set(times))
