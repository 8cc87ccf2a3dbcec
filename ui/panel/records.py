"""The audit trail with filters, its verification, and readings exports by chip, channel, window."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Engine, func, select

from store.audit import AuditReport, audit, verify_audit
from store.schema import AuditEntry, Channel, Chip, Reading
from ui.panel.auth import SignedIn, current
from ui.panel.lab import _frame, utc

AUDIT_PAGE_ROWS = 500


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action_contains: str = ""
    entity: str | None = None
    since_utc_s: float | None = None
    until_utc_s: float | None = None


def audit_actors(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(select(AuditEntry.actor).distinct().order_by(AuditEntry.actor)).scalars())


def audit_entities(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        found = connection.execute(select(AuditEntry.entity).distinct().order_by(AuditEntry.entity)).scalars()
        return [e for e in found if e]


def audit_trail(engine: Engine, chosen: AuditFilter, limit: int = AUDIT_PAGE_ROWS) -> pd.DataFrame:
    """The newest ``limit`` entries that pass the filter."""
    query = select(
        AuditEntry.seq,
        AuditEntry.t_utc_s,
        AuditEntry.actor,
        AuditEntry.action,
        AuditEntry.entity,
        AuditEntry.entity_id,
        AuditEntry.payload_json,
        AuditEntry.entry_hash,
    )
    if chosen.actor:
        query = query.where(AuditEntry.actor == chosen.actor)
    if chosen.action_contains:
        query = query.where(AuditEntry.action.contains(chosen.action_contains.strip(), autoescape=True))
    if chosen.entity:
        query = query.where(AuditEntry.entity == chosen.entity)
    if chosen.since_utc_s is not None:
        query = query.where(AuditEntry.t_utc_s >= chosen.since_utc_s)
    if chosen.until_utc_s is not None:
        query = query.where(AuditEntry.t_utc_s < chosen.until_utc_s)
    frame = _frame(engine, query.order_by(AuditEntry.seq.desc()).limit(limit))
    frame["time"] = utc(frame["t_utc_s"].astype(float))
    frame["entry_hash"] = frame["entry_hash"].str[:16] + "…"
    return frame[["seq", "time", "actor", "action", "entity", "entity_id", "payload_json", "entry_hash"]]


def verify(engine: Engine, user: SignedIn) -> AuditReport:
    """Chain, anchors and regulated rows; the check itself is recorded (after it, so it never checks
    its own entry)."""
    who = current(engine, user)
    report = verify_audit(engine)
    broken = report.first_broken
    audit(
        engine,
        who.username,
        "audit.verify",
        entity="auditentry",
        payload={
            "intact": report.intact,
            "entries_checked": report.entries_checked,
            "first_broken": None if broken is None else broken.seq,
            "problems": len(report.problems),
        },
    )
    return report


def problem_lines(report: AuditReport, limit: int = 50) -> list[str]:
    """One line per problem verification found (the chain's first broken link first)."""
    lines = []
    if (broken := report.first_broken) is not None:
        lines.append(
            f"BROKEN at entry {broken.seq} ({broken.actor}: {broken.action}): {broken.reason}. "
            f"The {report.entries_checked} entries before it are intact."
        )
    lines += [f"BROKEN ({p.kind}): {p.message}" for p in report.problems[:limit]]
    if len(report.problems) > limit:
        lines.append(f"… and {len(report.problems) - limit} more (`chiptwin audit verify --json` lists them all)")
    return lines


def chip_channels(engine: Engine) -> pd.DataFrame:
    query = (
        select(Channel.id, Channel.name, Channel.unit, Channel.chip_id, Chip.name.label("chip"))
        .join(Chip, Chip.id == Channel.chip_id, isouter=True)
        .order_by(Chip.name, Channel.name)
    )
    frame = _frame(engine, query)
    frame["chip"] = frame["chip"].fillna("(no chip)")
    return frame


def reading_span(engine: Engine, channel_ids: list[int]) -> tuple[float | None, float | None]:
    """Earliest and latest reading time over the channels (two index seeks per channel)."""
    lows, highs = [], []
    with engine.connect() as connection:
        for channel_id in channel_ids:
            lows.append(
                connection.execute(select(func.min(Reading.t_utc_s)).where(Reading.channel_id == channel_id)).scalar()
            )
            highs.append(
                connection.execute(select(func.max(Reading.t_utc_s)).where(Reading.channel_id == channel_id)).scalar()
            )
    lows, highs = [t for t in lows if t is not None], [t for t in highs if t is not None]
    return (min(lows) if lows else None, max(highs) if highs else None)


def count_readings(engine: Engine, channel_ids: list[int], start_utc_s: float, end_utc_s: float) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                select(func.count())
                .select_from(Reading)
                .where(Reading.channel_id.in_(channel_ids), Reading.t_utc_s >= start_utc_s, Reading.t_utc_s < end_utc_s)
            ).scalar()
        )


def export_readings(
    engine: Engine, user: SignedIn, channel_ids: list[int], start_utc_s: float | None, end_utc_s: float | None, fmt: str
) -> bytes:
    """Raw readings as CSV or Parquet bytes; the export is recorded in the audit trail."""
    from ui.panel.review import readings, to_csv, to_parquet

    who = current(engine, user)
    frame = readings(engine, channel_ids, start_utc_s, end_utc_s)
    audit(
        engine,
        who.username,
        "data.export",
        entity="reading",
        payload={"channels": channel_ids, "start": start_utc_s, "end": end_utc_s, "format": fmt, "rows": len(frame)},
    )
    return to_parquet(frame) if fmt == "parquet" else to_csv(frame)
