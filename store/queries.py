"""The reads the panel makes often: latest value per channel, and a downsampled window."""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd
from sqlalchemy import Engine, bindparam, select, text

from store.schema import Channel

WINDOW_COLUMNS = ["t_utc_s", "value", "min", "max", "n"]


class LatestReading(NamedTuple):
    channel_id: int
    channel: str
    unit: str
    t_utc_s: float | None
    value: float | None
    quality: int | None


_LATEST_SQL = text(
    "SELECT t_utc_s, value, quality FROM reading WHERE channel_id = :channel_id ORDER BY t_utc_s DESC LIMIT 1"
)


def latest_readings(engine: Engine, rig_id: int | None = None) -> list[LatestReading]:
    """The newest reading of every channel (None where a channel has none yet).

    One index seek per channel: a GROUP BY over the whole readings table would scan it.
    """
    query = select(Channel.id, Channel.name, Channel.unit).order_by(Channel.id)
    if rig_id is not None:
        query = query.where(Channel.rig_id == rig_id)
    result = []
    with engine.connect() as connection:
        for channel_id, name, unit in connection.execute(query).all():
            row = connection.execute(_LATEST_SQL, {"channel_id": channel_id}).first()
            result.append(LatestReading(channel_id, name, unit, *(row if row else (None, None, None))))
    return result


def window(
    engine: Engine, channel_id: int, t_start_utc_s: float, t_end_utc_s: float, max_points: int = 2000
) -> pd.DataFrame:
    """One channel's readings in [start, end), reduced in the database to ≤ ``max_points`` buckets.

    Each bucket keeps its mean time and value, and its min and max so spikes stay visible.
    A window with fewer readings than buckets comes back reading for reading (n = 1).
    """
    if not t_end_utc_s > t_start_utc_s:
        raise ValueError("the window's end must be after its start")
    if max_points < 1:
        raise ValueError("max_points must be at least 1")
    width_s = (t_end_utc_s - t_start_utc_s) / max_points
    bucket = _floor_sql(engine, "(t_utc_s - :t0) / :width")
    sql = text(
        f"SELECT {bucket} AS b, avg(t_utc_s), avg(value), min(value), max(value), count(*) "
        "FROM reading WHERE channel_id = :channel_id AND t_utc_s >= :t0 AND t_utc_s < :t1 "
        "GROUP BY b ORDER BY b"
    ).bindparams(bindparam("width"), bindparam("t0"), bindparam("t1"))
    with engine.connect() as connection:
        rows = connection.execute(
            sql, {"channel_id": channel_id, "t0": t_start_utc_s, "t1": t_end_utc_s, "width": width_s}
        ).all()
    frame = pd.DataFrame([row[1:] for row in rows], columns=WINDOW_COLUMNS)
    return frame.astype({"t_utc_s": float, "value": float, "min": float, "max": float, "n": int})


def windows(
    engine: Engine, channel_ids: list[int], t_start_utc_s: float, t_end_utc_s: float, max_points: int = 2000
) -> dict[int, pd.DataFrame]:
    """Several channels' windows in one query: ``{channel_id: window(...)}`` with the same buckets.

    Every asked-for channel is in the answer (an empty frame where it has no reading in [start, end)).
    """
    if not t_end_utc_s > t_start_utc_s:
        raise ValueError("the window's end must be after its start")
    if max_points < 1:
        raise ValueError("max_points must be at least 1")
    ids = [int(i) for i in channel_ids]
    if not ids:
        return {}
    width_s = (t_end_utc_s - t_start_utc_s) / max_points
    bucket = _floor_sql(engine, "(t_utc_s - :t0) / :width")
    sql = text(
        f"SELECT channel_id, {bucket} AS b, avg(t_utc_s), avg(value), min(value), max(value), count(*) "
        "FROM reading WHERE channel_id IN :ids AND t_utc_s >= :t0 AND t_utc_s < :t1 "
        "GROUP BY channel_id, b ORDER BY channel_id, b"
    ).bindparams(bindparam("ids", expanding=True), bindparam("width"), bindparam("t0"), bindparam("t1"))
    with engine.connect() as connection:
        rows = connection.execute(sql, {"ids": ids, "t0": t_start_utc_s, "t1": t_end_utc_s, "width": width_s}).all()
    frame = pd.DataFrame([(row[0], *row[2:]) for row in rows], columns=["channel_id", *WINDOW_COLUMNS])
    frame = frame.astype({"channel_id": int, "t_utc_s": float, "value": float, "min": float, "max": float, "n": int})
    groups = {int(k): g[WINDOW_COLUMNS].reset_index(drop=True) for k, g in frame.groupby("channel_id", sort=False)}
    empty = frame[WINDOW_COLUMNS].iloc[0:0]
    return {i: groups.get(i, empty.copy()) for i in ids}


def _floor_sql(engine: Engine, expression: str) -> str:
    # SQLite's CAST truncates (= floor here, the operand is never negative); PostgreSQL's rounds.
    if engine.dialect.name == "sqlite":
        return f"CAST({expression} AS INTEGER)"
    return f"floor({expression})"
