"""The overview's reads (rigs, chips, instruments, latest readings, open alarms) and alarm acknowledgement."""

from __future__ import annotations

import time

import pandas as pd
from sqlalchemy import Connection, Engine, select, update

from store.audit import append_audit
from store.queries import latest_readings
from store.repositories import proposals
from store.schema import Alarm, Channel, Chip, Instrument, Rig
from ui.panel import validators
from ui.panel.auth import SignedIn, require
from ui.panel.errors import PanelError
from ui.panel.transactions import audited

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
    contact = last_contact(engine)
    frame["last contact"] = utc(frame["id"].map(contact).astype(float))
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
    """The newest reading of every channel with its chip, and how old it is (s)."""
    rows = latest_readings(engine)
    frame = pd.DataFrame(rows, columns=["channel_id", "channel", "unit", "t_utc_s", "value", "quality"])
    names = _frame(
        engine,
        select(Channel.id.label("channel_id"), Chip.name.label("chip")).join(
            Chip, Chip.id == Channel.chip_id, isouter=True
        ),
    )
    frame = frame.merge(names, on="channel_id", how="left")
    now = time.time() if now_utc_s is None else now_utc_s
    frame["age_s"] = now - frame["t_utc_s"]
    frame["time"] = utc(frame["t_utc_s"].astype(float))
    return frame[["chip", "channel", "value", "unit", "time", "age_s", "quality", "channel_id"]]


def open_alarms(engine: Engine) -> pd.DataFrame:
    query = (
        select(
            Alarm.id, Alarm.t_utc_s, Alarm.severity, Alarm.source, Alarm.message, Alarm.run_id, Rig.name.label("rig")
        )
        .join(Rig, Rig.id == Alarm.rig_id, isouter=True)
        .where(Alarm.acknowledged_utc_s.is_(None))
        .order_by(Alarm.t_utc_s.desc())
    )
    frame = _frame(engine, query)
    frame["time"] = utc(frame["t_utc_s"].astype(float))
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
