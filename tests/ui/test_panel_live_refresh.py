"""The live page's incremental refresh: only the tail since the last complete bucket is queried, and
the kept window equals a full re-query of the same window."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import update

from store.ingest import ReadingIn, ingest_readings
from store.schema import PanelRequest
from tests.ui.test_panel_support import PASSWORDS, T0, lab  # noqa: F401 (lab is a fixture)
from ui.panel import live
from ui.panel.auth import sign_in
from ui.panel.context import engine_for

SPAN_S, POINTS = 3600.0, 100  # 36 s buckets


@pytest.fixture
def db(lab):
    return engine_for(lab.url)


@pytest.fixture
def queried(monkeypatch):
    """Every (start, stop) the live module asks the store for."""
    calls: list[tuple[float, float]] = []
    real = live.windows

    def spy(engine, ids, start, stop, max_points):  # noqa: ANN001, ANN202
        calls.append((start, stop))
        return real(engine, ids, start, stop, max_points=max_points)

    monkeypatch.setattr(live, "windows", spy)
    return calls


def _arrive(db, channel_ids, t_from: float, t_to: float, lag_s: float = 0.0) -> None:
    """1 Hz readings in [t_from, t_to); the last channel lags ``lag_s`` behind (its tail arrives later)."""
    rows = []
    for k, cid in enumerate(channel_ids):
        stop = t_to - (lag_s if k == len(channel_ids) - 1 else 0.0)
        rows += [ReadingIn(cid, float(t), 50.0 + np.cos(t / 300.0) + k) for t in np.arange(t_from, stop, 1.0)]
    ingest_readings(db, rows)


def _assert_same(kept: live.LiveWindow, full: live.LiveWindow) -> None:
    assert (kept.start_utc_s, kept.stop_utc_s) == (full.start_utc_s, full.stop_utc_s)
    for a, b in zip(kept.windows.channels, full.windows.channels, strict=True):
        assert a.channel_id == b.channel_id
        assert len(a.frame) == len(b.frame)
        columns = ["t_utc_s", "value", "min", "max", "n"]
        assert np.allclose(a.frame[columns].to_numpy(), b.frame[columns].to_numpy(), rtol=1e-12, atol=0)
        assert (a.frame["time"].to_numpy() == b.frame["time"].to_numpy()).all()
    marks = ["t_utc_s", "kind"]
    assert kept.windows.marks[marks].values.tolist() == full.windows.marks[marks].values.tolist()


def test_the_grid_is_whole_seconds_and_holds_the_window():
    assert live.bucket_width(3600.0, 500) == 8.0 and live.bucket_width(6 * 3600.0, 500) == 44.0
    assert live.bucket_width(10.0, 500) == 1.0
    start, stop = live._bounds(T0 + 1000.5, SPAN_S, 36.0)
    assert start <= T0 + 1000.5 - SPAN_S < start + 36.0 and stop - 36.0 <= T0 + 1000.5 < stop
    assert start % 36.0 == 0.0 and stop % 36.0 == 0.0


def test_refresh_queries_only_the_tail_and_equals_a_full_requery(db, lab, queried):
    chip = lab.chip_ids[0]
    ids = lab.channel_ids[:3]
    t = end = T0 + 7200.0
    cached = live.refresh_window(db, None, chip, t - 10.0, SPAN_S, POINTS)
    assert queried[-1] == (cached.start_utc_s, cached.stop_utc_s)  # nothing cached: the whole window
    for step in range(12):  # readings arrive 17 s at a time, one channel 5 s late; the window slides
        _arrive(db, ids, t, t + 17.0, lag_s=5.0)
        t += 17.0
        before, end = end if step else t - 17.0, live.latest_time(db, lab.rig_id)
        queried.clear()
        cached = live.refresh_window(db, cached, chip, end, SPAN_S, POINTS)
        ((start, stop),) = queried
        assert stop - start <= 3 * cached.width_s, f"refresh {step} re-read {stop - start:.0f} s"
        assert start <= before - 5.0  # the lagging channel's last (open) bucket is read again
        _assert_same(cached, live.full_window(db, chip, end, SPAN_S, POINTS))
        assert all(len(c.frame) >= POINTS for c in cached.windows.channels)
    first = cached.windows.channels[0].frame["t_utc_s"].iloc[0]
    assert first >= cached.start_utc_s >= end - SPAN_S - cached.width_s  # slid-out buckets are gone


def test_a_changed_span_or_chip_or_a_jump_queries_the_whole_window(db, lab, queried):
    chip, other = lab.chip_ids
    end = T0 + 7190.0
    cached = live.refresh_window(db, None, chip, end, SPAN_S, POINTS)
    for changed in (
        dict(chip_id=chip, end_utc_s=end, span_s=1800.0),
        dict(chip_id=other, end_utc_s=end, span_s=SPAN_S),
        dict(chip_id=chip, end_utc_s=end + 2 * SPAN_S, span_s=SPAN_S),  # no overlap any more
        dict(chip_id=chip, end_utc_s=end - 600.0, span_s=SPAN_S),
    ):  # another run's clock
        queried.clear()
        again = live.refresh_window(db, cached, max_points=POINTS, **changed)
        assert queried == [(again.start_utc_s, again.stop_utc_s)]
        _assert_same(again, live.full_window(db, max_points=POINTS, **changed))
    queried.clear()
    same = live.refresh_window(db, cached, chip, end, SPAN_S, POINTS)  # nothing new: only the open bucket
    assert len(queried) == 1 and queried[0][1] - queried[0][0] <= 2 * cached.width_s
    _assert_same(same, cached)


def test_the_newest_request_is_told_pending_or_acknowledged(db, lab):
    assert live.request_status(live.requests_of(db, lab.run_id)) is None
    request_id = live.request_control(db, sign_in(db, "tina", PASSWORDS["tina"]), lab.run_id, "pause")
    assert "is pending" in live.request_status(live.requests_of(db, lab.run_id))
    with db.begin() as connection:
        connection.execute(
            update(PanelRequest)
            .where(PanelRequest.id == request_id)
            .values(state="done", acknowledged_utc_s=T0 + 60.0, response="paused by tina")
        )
    assert live.request_status(live.requests_of(db, lab.run_id)) == (
        f"Request {request_id} (pause) done: acknowledged by the runner at 2027-01-15 08:01:00 UTC — paused by tina"
    )
