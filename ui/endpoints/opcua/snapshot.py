"""What the endpoint shows, read from the store in one pass: typed records, no OPC UA here."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, select

from store.queries import latest_readings
from store.repositories import runs as run_records
from store.schema import Alarm, Channel, Chip, Rig


@dataclass(frozen=True)
class ChannelView:
    id: int
    name: str
    quantity: str
    unit: str
    chip_id: int | None


@dataclass(frozen=True)
class ChannelValue:
    channel_id: int
    t_utc_s: float | None  # None: no reading yet
    value: float | None
    quality: int  # bit set of store.ingest.Quality


@dataclass(frozen=True)
class RunView:
    run_id: int | None
    state: str  # "idle" before the rig's first run
    current_step: str  # "3 dose (running)", "" when no step has started


@dataclass(frozen=True)
class RigView:
    id: int
    name: str
    chips: dict[int, str] = field(default_factory=dict)  # chip id -> name
    channels: list[ChannelView] = field(default_factory=list)


@dataclass(frozen=True)
class AlarmView:
    id: int
    rig_id: int | None
    t_utc_s: float
    severity: str
    source: str
    message: str


def topology(engine: Engine) -> list[RigView]:
    """Every rig with its chips and channels (channels without a chip hang on the rig)."""
    with engine.connect() as connection:
        rigs = connection.execute(select(Rig.id, Rig.name).order_by(Rig.id)).all()
        chips = connection.execute(select(Chip.id, Chip.rig_id, Chip.name).order_by(Chip.id)).all()
        channels = connection.execute(
            select(Channel.id, Channel.rig_id, Channel.name, Channel.quantity, Channel.unit, Channel.chip_id).order_by(
                Channel.id
            )
        ).all()
    views = {r.id: RigView(r.id, r.name) for r in rigs}
    for c in chips:
        views[c.rig_id].chips[c.id] = c.name
    for ch in channels:
        views[ch.rig_id].channels.append(ChannelView(ch.id, ch.name, ch.quantity, ch.unit, ch.chip_id))
    return list(views.values())


def values(engine: Engine) -> list[ChannelValue]:
    return [
        ChannelValue(r.channel_id, r.t_utc_s, r.value, int(r.quality or 0))
        for r in latest_readings(engine)  # one index seek per channel
    ]


def run_of(engine: Engine, rig_id: int) -> RunView:
    run = run_records.latest_of_rig(engine, rig_id)
    if run is None:
        return RunView(None, "idle", "")
    steps = run_records.steps(engine, run.id)
    step = f"{steps[-1].index} {steps[-1].kind} ({steps[-1].state})" if steps else ""
    return RunView(run.id, str(run.state), step)


def alarms_after(engine: Engine, alarm_id: int) -> list[AlarmView]:
    """Alarms newer than ``alarm_id``, oldest first."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(Alarm.id, Alarm.rig_id, Alarm.t_utc_s, Alarm.severity, Alarm.source, Alarm.message)
            .where(Alarm.id > alarm_id)
            .order_by(Alarm.id)
        ).all()
    return [AlarmView(r.id, r.rig_id, r.t_utc_s, r.severity, r.source, r.message) for r in rows]


def last_alarm_id(engine: Engine) -> int:
    """Where event delivery starts: alarms raised before the endpoint started are not replayed."""
    with engine.connect() as connection:
        found = connection.execute(select(Alarm.id).order_by(Alarm.id.desc()).limit(1)).scalar()  # type: ignore[union-attr]
    return int(found or 0)
