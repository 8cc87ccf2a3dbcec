"""What the endpoint shows, read from the store in one pass: typed records, no OPC UA here."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, and_, func, select

from store.repositories import runs as store_runs
from store.schema import Alarm, Channel, Chip, Reading, Rig


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


IDLE = RunView(None, "idle", "")


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
    acknowledged_by: str | None = None  # None: open
    acknowledged_utc_s: float | None = None  # wall-clock time of the acknowledgement
    ack_comment: str = ""


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


def topology_mark(engine: Engine) -> tuple[int, ...]:
    """Counts and newest ids of rigs, chips and channels: when it changes, read ``topology`` again."""
    query = select(
        select(func.count()).select_from(Rig).scalar_subquery(),
        select(func.max(Rig.id)).scalar_subquery(),
        select(func.count()).select_from(Chip).scalar_subquery(),
        select(func.max(Chip.id)).scalar_subquery(),
        select(func.count()).select_from(Channel).scalar_subquery(),
        select(func.max(Channel.id)).scalar_subquery(),
    )
    with engine.connect() as connection:
        row = connection.execute(query).one()
    return tuple(int(v or 0) for v in row)


def values(engine: Engine) -> list[ChannelValue]:
    """The newest reading of every channel in one statement (an index seek per channel inside the
    database, not one round trip per channel as ``store.queries.latest_readings``)."""
    newest = (
        select(func.max(Reading.t_utc_s))  # type: ignore[arg-type]
        .where(Reading.channel_id == Channel.id)
        .correlate(Channel)
        .scalar_subquery()
    )
    query = (
        select(Channel.id, Reading.t_utc_s, Reading.value, Reading.quality)  # type: ignore[call-overload]
        .select_from(Channel)
        .outerjoin(Reading, and_(Reading.channel_id == Channel.id, Reading.t_utc_s == newest))
        .order_by(Channel.id)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [ChannelValue(r[0], r[1], r[2], int(r[3] or 0)) for r in rows]


def runs(engine: Engine) -> dict[int, RunView]:
    """Every rig's newest run and its newest started step, in two statements; rigs without a run are absent."""
    newest = store_runs.newest_per_rig(engine)
    return {
        n.rig_id: RunView(n.run_id, n.state, f"{n.step_index} {n.step_kind} ({n.step_state})" if n.step_kind else "")
        for n in newest
    }


def run_of(engine: Engine, rig_id: int) -> RunView:
    return runs(engine).get(rig_id, IDLE)


_ALARM_COLUMNS = (
    Alarm.id,
    Alarm.rig_id,
    Alarm.t_utc_s,
    Alarm.severity,
    Alarm.source,
    Alarm.message,
    Alarm.acknowledged_by,
    Alarm.acknowledged_utc_s,
    Alarm.ack_comment,
)


def _alarm_views(rows) -> list[AlarmView]:
    return [AlarmView(*r[:6], r.acknowledged_by, r.acknowledged_utc_s, r.ack_comment or "") for r in rows]


def alarms_after(engine: Engine, alarm_id: int) -> list[AlarmView]:
    """Alarms newer than ``alarm_id``, oldest first."""
    with engine.connect() as connection:
        rows = connection.execute(select(*_ALARM_COLUMNS).where(Alarm.id > alarm_id).order_by(Alarm.id)).all()
    return _alarm_views(rows)


def open_alarms(engine: Engine, limit: int) -> list[AlarmView]:
    """The newest ``limit`` alarms nobody has acknowledged yet, oldest first."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(*_ALARM_COLUMNS)
            .where(Alarm.acknowledged_utc_s.is_(None))  # type: ignore[union-attr]
            .order_by(Alarm.id.desc())  # type: ignore[union-attr]
            .limit(limit)
        ).all()
    return _alarm_views(reversed(rows))


def acknowledged_among(engine: Engine, alarm_ids: list[int]) -> list[AlarmView]:
    """Those of ``alarm_ids`` acknowledged by now (from the panel or over OPC UA), oldest first."""
    if not alarm_ids:
        return []
    with engine.connect() as connection:
        rows = connection.execute(
            select(*_ALARM_COLUMNS)
            .where(Alarm.id.in_(alarm_ids), Alarm.acknowledged_utc_s.is_not(None))  # type: ignore[union-attr]
            .order_by(Alarm.id)
        ).all()
    return _alarm_views(rows)


def last_alarm_id(engine: Engine) -> int:
    """Where event delivery starts: alarms raised before the endpoint started are not replayed."""
    with engine.connect() as connection:
        found = connection.execute(select(Alarm.id).order_by(Alarm.id.desc()).limit(1)).scalar()  # type: ignore[union-attr]
    return int(found or 0)
