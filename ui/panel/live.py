"""The live run's data: runs, each chip's channel windows (downsampled in the database), dose and
sample marks, and the pause / resume / abort requests the runner picks up."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field

import pandas as pd
from sqlalchemy import Connection, Engine, func, insert, select

from store.audit import append_audit
from store.queries import window, windows
from store.repositories import runs as run_records
from store.schema import Channel, Chip, DoseEvent, PanelRequest, Reading, Sample
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
    columns = ["id", "rig", "rig_id", "state", "started_utc_s", "ended_utc_s", "clock_rate"]
    columns += ["started_wall_utc_s", "ended_wall_utc_s"]
    listed = [{**r.__dict__, "state": str(r.state)} for r in run_records.listing(engine)]
    return pd.DataFrame(listed, columns=columns)


def rig_chips(engine: Engine, rig_id: int) -> pd.DataFrame:
    return _frame(engine, select(Chip.id, Chip.name, Chip.organ).where(Chip.rig_id == rig_id).order_by(Chip.name))


def latest_time(engine: Engine, rig_id: int) -> float | None:
    """The newest reading time on the rig: the live window ends there (the clock may be accelerated)."""
    with engine.connect() as connection:
        ids = connection.execute(select(Channel.id).where(Channel.rig_id == rig_id)).scalars().all()
        newest = [
            connection.execute(select(func.max(Reading.t_utc_s)).where(Reading.channel_id == i)).scalar() for i in ids
        ]
    newest = [t for t in newest if t is not None]
    return max(newest) if newest else None


def _marks(connection: Connection, chip_id: int, start: float, end: float) -> pd.DataFrame:
    doses = connection.execute(
        select(DoseEvent.t_utc_s, DoseEvent.drug, DoseEvent.amount_nmol).where(
            DoseEvent.chip_id == chip_id, DoseEvent.t_utc_s >= start, DoseEvent.t_utc_s < end
        )
    ).all()
    samples = connection.execute(
        select(Sample.t_utc_s, Sample.label, Sample.volume_ml).where(
            Sample.chip_id == chip_id, Sample.t_utc_s >= start, Sample.t_utc_s < end
        )
    ).all()
    rows = [(t, "dose", f"{drug} {amount:g} nmol") for t, drug, amount in doses]
    rows += [(t, "sample", f"{label} ({volume:g} mL)") for t, label, volume in samples]
    frame = pd.DataFrame(rows, columns=["t_utc_s", "kind", "label"])
    frame["time"] = utc(frame["t_utc_s"].astype(float))
    return frame


def chip_windows(
    engine: Engine, chip_id: int, start_utc_s: float, end_utc_s: float, max_points: int = DEFAULT_POINTS
) -> ChipWindows:
    """Every channel of one chip over [start, end), each reduced to ≤ ``max_points`` buckets."""
    with engine.connect() as connection:
        chip = connection.execute(select(Chip.name, Chip.organ).where(Chip.id == chip_id)).one()
        channels = connection.execute(
            select(Channel.id, Channel.name, Channel.quantity, Channel.unit)
            .where(Channel.chip_id == chip_id)
            .order_by(Channel.name)
        ).all()
        marks = _marks(connection, chip_id, start_utc_s, end_utc_s)
    result = ChipWindows(chip_id, chip.name, chip.organ, marks=marks)
    for channel_id, name, quantity, unit in channels:
        frame = window(engine, channel_id, start_utc_s, end_utc_s, max_points=max_points)
        frame["time"] = utc(frame["t_utc_s"])
        result.channels.append(ChannelWindow(channel_id, name, quantity, unit, frame))
    return result


@dataclass
class LiveWindow:
    """A chip's downsampled window kept between refreshes (in the session): fixed-width buckets on a
    grid of whole multiples of ``width_s``, covering [start, stop); ``stop`` ends the newest bucket."""

    chip_id: int
    span_s: float
    max_points: int
    width_s: float
    start_utc_s: float
    stop_utc_s: float
    windows: ChipWindows


def bucket_width(span_s: float, max_points: int = DEFAULT_POINTS) -> float:
    """Whole seconds (so grid points are exact floats and every query buckets alike), ≥ 1 s."""
    return float(max(1, math.ceil(span_s / max_points)))


def _bounds(end_utc_s: float, span_s: float, width_s: float) -> tuple[float, float]:
    """The grid-aligned window holding (end − span, end]: its first bucket's start, its last bucket's end."""
    return math.floor((end_utc_s - span_s) / width_s) * width_s, (math.floor(end_utc_s / width_s) + 1) * width_s


def _query(
    engine: Engine, channel_ids: list[int], start: float, stop: float, width_s: float
) -> dict[int, pd.DataFrame]:
    frames = windows(engine, channel_ids, start, stop, max_points=max(1, round((stop - start) / width_s)))
    for frame in frames.values():
        frame["time"] = utc(frame["t_utc_s"])
    return frames


def full_window(
    engine: Engine, chip_id: int, end_utc_s: float, span_s: float, max_points: int = DEFAULT_POINTS
) -> LiveWindow:
    """Every channel of the chip over the grid-aligned window ending with the bucket that holds ``end``."""
    width = bucket_width(span_s, max_points)
    start, stop = _bounds(end_utc_s, span_s, width)
    with engine.connect() as connection:
        chip = connection.execute(select(Chip.name, Chip.organ).where(Chip.id == chip_id)).one()
        channels = connection.execute(
            select(Channel.id, Channel.name, Channel.quantity, Channel.unit)
            .where(Channel.chip_id == chip_id)
            .order_by(Channel.name)
        ).all()
        marks = _marks(connection, chip_id, start, stop)
    frames = _query(engine, [c.id for c in channels], start, stop, width)
    result = ChipWindows(
        chip_id,
        chip.name,
        chip.organ,
        marks=marks,
        channels=[ChannelWindow(i, n, q, u, frames[i]) for i, n, q, u in channels],
    )
    return LiveWindow(chip_id, span_s, max_points, width, start, stop, result)


def why_empty(channel: ChannelWindow, span: str) -> str:
    """What a channel without readings in the window means, in place of an empty chart."""
    if channel.quantity == "dispensed":
        return (
            f"{channel.name}: no dose in the {span} — a pump's counter is not polled (its serial line belongs "
            "to dosing); the runner stores its readback after each dose."
        )
    return (
        f"{channel.name}: no reading in the {span} — its device has not answered, or no run polls this rig now "
        "(the Overview shows each instrument's state and last contact)."
    )


def tail_start(cached: LiveWindow) -> float:
    """Where the refresh re-reads from: the start of the earliest channel's last bucket (it may have
    been incomplete when read), or the window's last bucket when a channel has nothing yet."""
    width, starts = cached.width_s, [cached.stop_utc_s - cached.width_s]
    for channel in cached.windows.channels:
        if not channel.frame.empty:
            last = float(channel.frame["t_utc_s"].iloc[-1])
            starts.append(cached.start_utc_s + math.floor((last - cached.start_utc_s) / width) * width)
    return max(cached.start_utc_s, min(starts))


def refresh_window(
    engine: Engine,
    cached: LiveWindow | None,
    chip_id: int,
    end_utc_s: float,
    span_s: float,
    max_points: int = DEFAULT_POINTS,
) -> LiveWindow:
    """The chip's window ending at ``end``: from ``cached``, only the tail since its last complete bucket
    is queried, appended, and the buckets that slid out are dropped. A full query when there is nothing
    cached, the chip, span or resolution changed, or the new window no longer overlaps the cached one."""
    if cached is None or cached.chip_id != chip_id or cached.span_s != span_s or cached.max_points != max_points:
        return full_window(engine, chip_id, end_utc_s, span_s, max_points)
    width = cached.width_s
    start, stop = _bounds(end_utc_s, span_s, width)
    tail = tail_start(cached)
    if start < cached.start_utc_s or start >= tail or stop < cached.stop_utc_s:
        return full_window(engine, chip_id, end_utc_s, span_s, max_points)
    frames = _query(engine, [c.channel_id for c in cached.windows.channels], tail, stop, width)
    channels = []
    for channel in cached.windows.channels:
        old = channel.frame
        keep = old[(old["t_utc_s"] >= start) & (old["t_utc_s"] < tail)]
        new = frames[channel.channel_id]
        frame = (
            pd.concat([keep, new], ignore_index=True)
            if not keep.empty and not new.empty
            else (new if keep.empty else keep.reset_index(drop=True))
        )
        channels.append(ChannelWindow(channel.channel_id, channel.name, channel.quantity, channel.unit, frame))
    with engine.connect() as connection:
        marks = _marks(connection, chip_id, start, stop)
    chip = cached.windows
    return LiveWindow(
        chip_id,
        span_s,
        max_points,
        width,
        start,
        stop,
        ChipWindows(chip_id, chip.chip, chip.organ, channels=channels, marks=marks),
    )


def request_control(engine: Engine, user: SignedIn | None, run_id: int, kind: str) -> int:
    """Write a pause/resume/abort request for the run's runner; returns the request id."""
    who = require(engine, user, "control")
    if kind not in CONTROL_KINDS:
        raise PanelError(f"unknown request {kind!r}; one of {', '.join(CONTROL_KINDS)}")

    def work(connection: Connection) -> int:
        state = run_records.state(connection, run_id)
        if state is None:
            raise PanelError(f"there is no run {run_id}")
        now = time.time()
        request_id = connection.execute(
            insert(PanelRequest).values(
                run_id=run_id,
                kind=kind,
                payload_json=json.dumps({"run_state_seen": state}),
                requested_by=who.username,
                requested_utc_s=now,
                state="pending",
                response="",
            )
        ).inserted_primary_key[0]
        append_audit(
            connection,
            who.username,
            f"run.{kind}_request",
            entity="protocolrun",
            entity_id=run_id,
            payload={"request_id": request_id, "run_state_seen": state},
            t_utc_s=now,
        )
        return request_id

    return audited(engine, work)


def pending_kind(requests: pd.DataFrame, request_id: int | None) -> str | None:
    """The kind of request ``request_id`` if it is among ``requests`` (from :func:`requests_of`) and
    still pending, else None."""
    row = requests[(requests["id"] == request_id) & (requests["state"] == "pending")]
    return None if row.empty else str(row["kind"].iloc[0])


def request_status(requests: pd.DataFrame) -> str | None:
    """One line on the newest request: pending, or what the runner answered and when it acknowledged."""
    if requests.empty:
        return None
    last = requests.iloc[0]
    if last["state"] == "pending":
        return f"Request {last['id']} ({last['kind']}) is pending: the runner has not acknowledged it yet."
    when = "" if pd.isna(last["acknowledged"]) else f" at {last['acknowledged']:%Y-%m-%d %H:%M:%S} UTC"
    answer = f" — {last['response']}" if last["response"] else ""
    return f"Request {last['id']} ({last['kind']}) {last['state']}: acknowledged by the runner{when}{answer}"


def requests_of(engine: Engine, run_id: int, limit: int = 20) -> pd.DataFrame:
    """The run's recent panel requests with their state (pending until the runner acknowledges)."""
    query = (
        select(
            PanelRequest.id,
            PanelRequest.kind,
            PanelRequest.requested_by,
            PanelRequest.requested_utc_s,
            PanelRequest.state,
            PanelRequest.acknowledged_utc_s,
            PanelRequest.response,
        )
        .where(PanelRequest.run_id == run_id)
        .order_by(PanelRequest.id.desc())
        .limit(limit)
    )
    frame = _frame(engine, query)
    frame["requested"] = utc(frame["requested_utc_s"].astype(float))
    frame["acknowledged"] = utc(frame["acknowledged_utc_s"].astype(float))
    return frame[["id", "kind", "state", "requested_by", "requested", "acknowledged", "response"]]
