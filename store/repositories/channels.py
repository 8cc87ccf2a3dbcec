"""The lab's channels by name (rig × channel), and the newest reading of one: what outside systems read.

Names, not ids: a SiLA 2 or OPC UA client knows a rig and a channel by what the rig file calls them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlmodel import col

from store.repositories.reading import read
from store.schema import Channel, Chip, Reading, Rig


@dataclass(frozen=True)
class ChannelInfo:
    """One channel as a person reads it: its rig, its chip (empty for a rig-wide channel), what and in which unit."""

    rig: str
    chip: str
    channel: str
    quantity: str
    unit: str


@dataclass(frozen=True)
class LatestValue:
    """The newest reading of a channel, with its unit."""

    value: float
    unit: str
    t_utc_s: float
    quality: int


def listing(source: Engine | Connection) -> list[ChannelInfo]:
    """Every channel of every rig, by rig then channel name."""
    query = (
        select(col(Rig.name), col(Chip.name), col(Channel.name), col(Channel.quantity), col(Channel.unit))
        .join(Rig, col(Rig.id) == col(Channel.rig_id))
        .outerjoin(Chip, col(Chip.id) == col(Channel.chip_id))
        .order_by(col(Rig.name), col(Channel.name))
    )
    return [ChannelInfo(r[0], r[1] or "", r[2], r[3], r[4]) for r in (tuple(row) for row in read(source, query).all())]


def channel_id(source: Engine | Connection, rig: str, channel: str) -> tuple[int, str] | None:
    """The id and unit of ``rig``'s channel ``channel``; None when there is no such channel."""
    query = (
        select(col(Channel.id), col(Channel.unit))
        .join(Rig, col(Rig.id) == col(Channel.rig_id))
        .where(col(Rig.name) == rig, col(Channel.name) == channel)
    )
    row = read(source, query).first()
    if row is None:
        return None
    found: tuple[Any, ...] = tuple(row)
    return int(found[0]), str(found[1])


def latest(source: Engine | Connection, rig: str, channel: str) -> LatestValue | None:
    """The newest reading of ``rig``'s ``channel`` (one index seek); None when it has none or does not exist."""
    found = channel_id(source, rig, channel)
    if found is None:
        return None
    query = (
        select(col(Reading.value), col(Reading.t_utc_s), col(Reading.quality))
        .where(col(Reading.channel_id) == found[0])
        .order_by(col(Reading.t_utc_s).desc())
        .limit(1)
    )
    row = read(source, query).first()
    if row is None:
        return None
    values: tuple[Any, ...] = tuple(row)
    return LatestValue(float(values[0]), found[1], float(values[1]), int(values[2]))
