"""The panel's reads: latest value per channel and a window downsampled in the database."""

from __future__ import annotations

import numpy as np
import pytest

from store.ingest import ReadingIn, ingest_readings
from store.queries import latest_readings, window, windows


def test_latest_reading_of_every_channel(engine, channels):
    ingest_readings(
        engine,
        [ReadingIn(channels["o2"], t, 100.0 - t) for t in (3.0, 1.0, 2.0)]
        + [ReadingIn(channels["pressure"], 1.5, 120.0)],
    )
    latest = {r.channel: r for r in latest_readings(engine)}
    assert (latest["o2"].t_utc_s, latest["o2"].value) == (3.0, 97.0)
    assert (latest["pressure"].t_utc_s, latest["pressure"].unit) == (1.5, "mbar")
    assert latest["temperature"].value is None


def test_window_is_downsampled_with_mean_min_and_max_per_bucket(engine, channels):
    rng = np.random.default_rng(7)
    t = np.arange(0.0, 3600.0, 1.0)
    v = 80 + rng.normal(0, 1, t.size)
    v[1234] = 200.0  # a spike must survive downsampling in the max column
    ingest_readings(engine, [ReadingIn(channels["o2"], float(a), float(b)) for a, b in zip(t, v)])
    frame = window(engine, channels["o2"], 600.0, 3000.0, max_points=100)
    assert len(frame) == 100 and frame["n"].sum() == 2400
    inside = (t >= 600) & (t < 3000)
    buckets = np.floor((t[inside] - 600.0) / 24.0).astype(int)
    expected_mean = np.bincount(buckets, v[inside]) / np.bincount(buckets)
    assert np.allclose(frame["value"], expected_mean, rtol=1e-12)
    assert frame["max"].max() == 200.0
    assert np.all(frame["min"] <= frame["value"]) and np.all(frame["value"] <= frame["max"])
    assert np.all(np.diff(frame["t_utc_s"]) > 0)


def test_a_sparse_window_comes_back_reading_for_reading(engine, channels):
    ingest_readings(engine, [ReadingIn(channels["o2"], float(t), float(t)) for t in range(10)])
    frame = window(engine, channels["o2"], 0.0, 10.0, max_points=2000)
    assert list(frame["t_utc_s"]) == [float(t) for t in range(10)] and set(frame["n"]) == {1}


def test_window_rejects_an_empty_interval(engine, channels):
    with pytest.raises(ValueError, match="end must be after its start"):
        window(engine, channels["o2"], 5.0, 5.0)


def test_windows_of_several_channels_equal_one_window_each(engine, channels):
    rng = np.random.default_rng(11)
    t = np.arange(0.0, 1800.0, 1.0)
    for name in ("o2", "pressure"):
        ingest_readings(
            engine, [ReadingIn(channels[name], float(a), float(b)) for a, b in zip(t, rng.normal(50, 5, t.size))]
        )
    ids = [channels["o2"], channels["pressure"], channels["temperature"]]
    frames = windows(engine, ids, 100.0, 1700.0, max_points=64)
    assert list(frames) == ids
    for name in ("o2", "pressure"):
        one = window(engine, channels[name], 100.0, 1700.0, max_points=64)
        assert len(one) == 64 and np.allclose(frames[channels[name]].to_numpy(), one.to_numpy(), rtol=1e-12)
    assert frames[channels["temperature"]].empty
    assert list(frames[channels["temperature"]].columns) == ["t_utc_s", "value", "min", "max", "n"]
    assert windows(engine, [], 0.0, 1.0) == {}
    with pytest.raises(ValueError, match="end must be after its start"):
        windows(engine, ids, 5.0, 5.0)
