"""Times of readings and instruments as the panel shows them: each on the clock of its rig's newest
run (ui.run_clock), so a simulated rig's readings read as run time, never as a future date, and
their age is wall seconds since they were taken, never negative."""

from __future__ import annotations

import time

import pandas as pd
from sqlalchemy import Engine, select

from store.repositories import runs
from store.schema import Channel
from ui.run_clock import RunClock


def rig_clocks(engine: Engine) -> dict[int, RunClock]:
    """Rig id → the clock of its newest run."""
    clocks: dict[int, RunClock] = {}
    for run in runs.listing(engine):  # newest first: the first seen per rig is its newest
        clocks.setdefault(run.rig_id, RunClock.of(run))
    return clocks


def run_clocks(engine: Engine) -> dict[int, RunClock]:
    """Run id → its clock."""
    return {run.id: RunClock.of(run) for run in runs.listing(engine)}


def channel_rigs(engine: Engine) -> dict[int, int]:
    with engine.connect() as c:
        return {int(k): int(v) for k, v in c.execute(select(Channel.id, Channel.rig_id)).all()}


def readable_readings(engine: Engine, frame: pd.DataFrame, now_utc_s: float | None = None) -> pd.DataFrame:
    """``lab.latest``'s frame with ``time`` as a person reads it and ``age_s`` in wall seconds (≥ 0)."""
    if frame.empty:
        return frame
    now = time.time() if now_utc_s is None else now_utc_s
    clocks, rigs = rig_clocks(engine), channel_rigs(engine)
    real = RunClock(1.0, None)
    shown, ages = [], []
    for channel_id, t in zip(frame["channel_id"], frame["time"]):
        clock = clocks.get(rigs.get(int(channel_id), -1), real)
        seconds = t.timestamp()
        wall = clock.wall_of(seconds)
        shown.append(clock.text(seconds))
        ages.append(None if wall is None else max(0.0, now - wall))
    out = frame.copy()
    out["time"] = shown
    out["age_s"] = ages
    return out
