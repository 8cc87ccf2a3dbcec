"""The live run's data: runs, each chip's channel windows (downsampled in the database), dose and
sample marks, and the pause / resume / abort requests the runner picks up."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import pandas as pd
from sqlalchemy import Connection, Engine, func, insert, select

from store.audit import append_audit
from store.queries import window
from store.schema import Channel, Chip, DoseEvent, PanelRequest, ProtocolRun, Reading, Rig, Sample
from ui.panel.auth import SignedIn, require
from ui.panel.errors import PanelError
from ui.panel.lab import _frame, utc
from ui.panel.transactions import audited

CONTROL_KINDS = ("pause", "resume", "abort")
SPANS_S = {"last hour": 3600.0, "last 6 h": 6 * 3600.0, "last 24 h": 86400.0, "last 7 days": 7 * 86400.0}
DEFAULT_POINTS = 500  # about one point per pixel of a half-width plot


@dataclass
class ChannelWindow:
    channel_id: int
    name: str
    quantity: str
    unit: str
    frame: pd.DataFrame  # time, t_utc_s, value, min, max, n


@dataclass
class ChipWindows:
    chip_id: int
    chip: str
    organ: str
    channels: list[ChannelWindow] = field(default_factory=list)
    marks: pd.DataFrame = field(default_factory=pd.DataFrame)  # time, kind, label


def runs(engine: Engine) -> pd.DataFrame:
    query = (select(ProtocolRun.id, Rig.name.label("rig"), ProtocolRun.rig_id, ProtocolRun.state,
                    ProtocolRun.started_utc_s, ProtocolRun.ended_utc_s, ProtocolRun.clock_rate)
             .join(Rig, Rig.id == ProtocolRun.rig_id).order_by(ProtocolRun.id.desc()))
    return _frame(engine, query)


def rig_chips(engine: Engine, rig_id: int) -> pd.DataFrame:
    return _frame(engine, select(Chip.id, Chip.name, Chip.organ).where(Chip.rig_id == rig_id).order_by(Chip.name))


def latest_time(engine: Engine, rig_id: int) -> float | None:
    """The newest reading time on the rig: the live window ends there (the clock may be accelerated)."""
    with engine.connect() as connection:
        ids = connection.execute(select(Channel.id).where(Channel.rig_id == rig_id)).scalars().all()
        newest = [connection.execute(select(func.max(Reading.t_utc_s)).where(Reading.channel_id == i)).scalar()
                  for i in ids]
    newest = [t for t in newest if t is not None]
    return max(newest) if newest else None


def _marks(connection: Connection, chip_id: int, start: float, end: float) -> pd.DataFrame:
    doses = connection.execute(select(DoseEvent.t_utc_s, DoseEvent.drug, DoseEvent.amount_nmol).where(
        DoseEvent.chip_id == chip_id, DoseEvent.t_utc_s >= start, DoseEvent.t_utc_s < end)).all()
    samples = connection.execute(select(Sample.t_utc_s, Sample.label, Sample.volume_ml).where(
        Sample.chip_id == chip_id, Sample.t_utc_s >= start, Sample.t_utc_s < end)).all()
    rows = [(t, "dose", f"{drug} {amount:g} nmol") for t, drug, amount in doses]
    rows += [(t, "sample", f"{label} ({volume:g} mL)") for t, label, volume in samples]
    frame = pd.DataFrame(rows, columns=["t_utc_s", "kind", "label"])
    frame["time"] = utc(frame["t_utc_s"].astype(float))
    return frame


def chip_windows(engine: Engine, chip_id: int, start_utc_s: float, end_utc_s: float,
                 max_points: int = DEFAULT_POINTS) -> ChipWindows:
    """Every channel of one chip over [start, end), each reduced to ≤ ``max_points`` buckets."""
    with engine.connect() as connection:
        chip = connection.execute(select(Chip.name, Chip.organ).where(Chip.id == chip_id)).one()
        channels = connection.execute(select(Channel.id, Channel.name, Channel.quantity, Channel.unit)
                                      .where(Channel.chip_id == chip_id).order_by(Channel.name)).all()
        marks = _marks(connection, chip_id, start_utc_s, end_utc_s)
    result = ChipWindows(chip_id, chip.name, chip.organ, marks=marks)
    for channel_id, name, quantity, unit in channels:
        frame = window(engine, channel_id, start_utc_s, end_utc_s, max_points=max_points)
        frame["time"] = utc(frame["t_utc_s"])
        result.channels.append(ChannelWindow(channel_id, name, quantity, unit, frame))
    return result


def request_control(engine: Engine, user: SignedIn | None, run_id: int, kind: str) -> int:
    """Write a pause/resume/abort request for the run's runner; returns the request id."""
    who = require(user, "control")
    if kind not in CONTROL_KINDS:
        raise PanelError(f"unknown request {kind!r}; one of {', '.join(CONTROL_KINDS)}")

    def work(connection: Connection) -> int:
        state = connection.execute(select(ProtocolRun.state).where(ProtocolRun.id == run_id)).scalar()
        if state is None:
            raise PanelError(f"there is no run {run_id}")
        now = time.time()
        request_id = connection.execute(insert(PanelRequest).values(
            run_id=run_id, kind=kind, payload_json=json.dumps({"run_state_seen": state}),
            requested_by=who.username, requested_utc_s=now, state="pending", response="")).inserted_primary_key[0]
        append_audit(connection, who.username, f"run.{kind}_request", entity="protocolrun", entity_id=run_id,
                     payload={"request_id": request_id, "run_state_seen": state}, t_utc_s=now)
        return request_id

    return audited(engine, work)


def requests_of(engine: Engine, run_id: int, limit: int = 20) -> pd.DataFrame:
    """The run's recent panel requests with their state (pending until the runner acknowledges)."""
    query = (select(PanelRequest.id, PanelRequest.kind, PanelRequest.requested_by, PanelRequest.requested_utc_s,
                    PanelRequest.state, PanelRequest.acknowledged_utc_s, PanelRequest.response)
             .where(PanelRequest.run_id == run_id).order_by(PanelRequest.id.desc()).limit(limit))
    frame = _frame(engine, query)
    frame["requested"] = utc(frame["requested_utc_s"].astype(float))
    frame["acknowledged"] = utc(frame["acknowledged_utc_s"].astype(float))
    return frame[["id", "kind", "state", "requested_by", "requested", "acknowledged", "response"]]
