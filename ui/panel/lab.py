"""The overview's reads (rigs, chips, instruments, latest readings, open alarms) and alarm acknowledgement."""

from __future__ import annotations

import time

import pandas as pd
from sqlalchemy import Connection, Engine, select, update

from store.audit import append_audit
from store.queries import latest_readings
from store.repositories import proposals, runs
from store.schema import Alarm, Channel, Chip, Instrument, Rig
from ui.panel import validators
from ui.panel.auth import SignedIn, require
from ui.panel.errors import PanelError
from ui.panel.transactions import audited
from ui.run_clock import RunClock, clock_of

REAL_TIME = RunClock(started_s=0.0, started_wall_s=0.0, rate=1.0)  # a rig no run has started on

CONNECTION_BADGES = {
    "ok": "🟢 ok",
    "degraded": "🟡 degraded",
    "reconnecting": "🟠 reconnecting",
    "lost": "🔴 lost",
    "unknown": "⚪ not seen by a runner yet",
}
TROUBLE = ("degraded", "reconnecting", "lost")  # what the overview counts as "not ok"


def utc(seconds: pd.Series | float | None):
    """UTC seconds → pandas timestamps (a Series or one value); None stays missing."""
    if isinstance(seconds, pd.Series):
        return pd.to_datetime(seconds, unit="s", utc=True)
    return None if seconds is None else pd.Timestamp(seconds, unit="s", tz="UTC")


def rig_clocks(engine: Engine) -> dict[int, RunClock]:
    """Rig id → the clock of its newest started run: how its readings' times are read (ui.run_clock)."""
    clocks: dict[int, RunClock] = {}
    for run in runs.listing(engine):  # newest first
        if run.rig_id not in clocks and (clock := clock_of(run)) is not None:
            clocks[run.rig_id] = clock
    return clocks


def run_clocks(engine: Engine) -> dict[int, RunClock]:
    """Run id → its clock (runs that have started)."""
    return {run.id: clock for run in runs.listing(engine) if (clock := clock_of(run)) is not None}


def _frame(engine: Engine, query) -> pd.DataFrame:
    with engine.connect() as connection:
        result = connection.execute(query)
        return pd.DataFrame(result.all(), columns=list(result.keys()))


def rigs(engine: Engine) -> pd.DataFrame:
    return _frame(engine, select(Rig.id, Rig.name, Rig.description).order_by(Rig.name))


def chips(engine: Engine) -> pd.DataFrame:
    query = (
        select(
            Chip.id,
            Rig.name.label("rig"),
            Chip.name,
            Chip.organ,
            Chip.cell_lot,
            Chip.n_cells_million,
            Chip.v_medium_ml,
            Chip.v_cell_ml,
        )
        .join(Rig, Rig.id == Chip.rig_id)
        .order_by(Rig.name, Chip.name)
    )
    return _frame(engine, query)


def instruments(engine: Engine) -> pd.DataFrame:
    query = (
        select(
            Instrument.id,
            Instrument.rig_id,
            Rig.name.label("rig"),
            Instrument.name,
            Instrument.driver,
            Instrument.address,
            Instrument.connection_state,
        )
        .join(Rig, Rig.id == Instrument.rig_id)
        .order_by(Rig.name, Instrument.name)
    )
    frame = _frame(engine, query)
    frame["state"] = frame["connection_state"].map(lambda s: CONNECTION_BADGES.get(s, f"⚪ {s}"))
    contact, clocks = last_contact(engine), rig_clocks(engine)
    frame["last contact"] = [
        clocks.get(int(rig), REAL_TIME).label(contact.get(int(i))) if int(i) in contact else None
        for i, rig in zip(frame["id"], frame["rig_id"])
    ]
    return frame


def last_contact(engine: Engine) -> dict[int, float]:
    """Instrument id → the time of its newest reading (a sensor's poll, a pump's readback after a dose)."""
    rows = latest_readings(engine)
    with engine.connect() as connection:
        owner = dict(connection.execute(select(Channel.id, Channel.instrument_id)).all())
    contact: dict[int, float] = {}
    for row in rows:
        instrument = owner.get(row.channel_id)
        if instrument is not None and row.t_utc_s is not None:
            contact[instrument] = max(contact.get(instrument, float("-inf")), float(row.t_utc_s))
    return contact


def latest(engine: Engine, now_utc_s: float | None = None) -> pd.DataFrame:
    """The newest reading of every channel with its chip, when it was taken and how old it is (wall s).

    A simulated run's reading is timed on its run ("run +12 h 30 min"); its age is wall-clock time.
    """
    rows = latest_readings(engine)
    frame = pd.DataFrame(rows, columns=["channel_id", "channel", "unit", "t_utc_s", "value", "quality"])
    names = _frame(
        engine,
        select(Channel.id.label("channel_id"), Channel.rig_id, Chip.name.label("chip")).join(
            Chip, Chip.id == Channel.chip_id, isouter=True
        ),
    )
    frame = frame.merge(names, on="channel_id", how="left")
    now = time.time() if now_utc_s is None else now_utc_s
    clocks = rig_clocks(engine)
    read = [
        (None, None) if pd.isna(t) else (clock.label(float(t)), clock.age_s(float(t), now))
        for clock, t in zip((clocks.get(int(r), REAL_TIME) for r in frame["rig_id"]), frame["t_utc_s"])
    ]
    frame["time"] = [label for label, _ in read]
    frame["age_s"] = pd.Series([age for _, age in read], index=frame.index, dtype=float)
    return frame[["chip", "channel", "value", "unit", "time", "age_s", "quality", "channel_id"]]


def open_alarms(engine: Engine) -> pd.DataFrame:
    query = (
        select(
            Alarm.id,
            Alarm.t_utc_s,
            Alarm.severity,
            Alarm.source,
            Alarm.message,
            Alarm.run_id,
            Alarm.rig_id,
            Rig.name.label("rig"),
        )
        .join(Rig, Rig.id == Alarm.rig_id, isouter=True)
        .where(Alarm.acknowledged_utc_s.is_(None))
        .order_by(Alarm.t_utc_s.desc())
    )
    frame = _frame(engine, query)
    by_run, by_rig = run_clocks(engine), rig_clocks(engine)

    def clock(run_id, rig_id) -> RunClock:
        if not pd.isna(run_id) and int(run_id) in by_run:
            return by_run[int(run_id)]
        return by_rig.get(int(rig_id), REAL_TIME) if not pd.isna(rig_id) else REAL_TIME

    frame["time"] = [
        clock(run_id, rig_id).label(float(t))
        for t, run_id, rig_id in zip(frame["t_utc_s"], frame["run_id"], frame["rig_id"])
    ]
    return frame


def acknowledge_alarm(engine: Engine, user: SignedIn | None, alarm_id: int, comment: str) -> int:
    """Mark an open alarm acknowledged with the user's comment; audited in the same transaction."""
    who = require(engine, user, "control")
    comment = validators.free_text("comment", comment)
    if not comment:
        raise PanelError("say what was done about the alarm: the comment is required")
    now = time.time()

    def work(connection: Connection) -> None:
        done = connection.execute(
            update(Alarm)
            .where(Alarm.id == alarm_id, Alarm.acknowledged_utc_s.is_(None))
            .values(acknowledged_by=who.username, acknowledged_utc_s=now, ack_comment=comment)
        )
        if done.rowcount != 1:
            raise PanelError(f"alarm {alarm_id} is not open (acknowledged already, or gone)")
        append_audit(
            connection,
            who.username,
            "alarm.acknowledge",
            entity="alarm",
            entity_id=alarm_id,
            payload={"comment": comment},
            t_utc_s=now,
        )
        return alarm_id

    return audited(engine, work)


def pending_proposals(engine: Engine) -> pd.DataFrame:
    columns = ["id", "run_id", "fit_id", "expected_information_gain", "created_utc_s", "design_json", "predicted_json"]
    frame = pd.DataFrame([{c: getattr(p, c) for c in columns} for p in proposals.pending(engine)], columns=columns)
    frame["created"] = utc(frame["created_utc_s"].astype(float))
    return frame
