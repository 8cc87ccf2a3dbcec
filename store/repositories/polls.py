"""The poll ledger: every poll slot of a run's channels, accounted for after the fact.

A runner's poller reads each channel at slots ``first_due + k·period`` of the run's clock. Each
runner process writes a *session* (``pollsession``) with each channel's slot grid
(``pollschedule``) when its poller starts, and the slots it served without a reading
(``pollgap``: ``late`` = skipped, ``no_value`` = the device failed before it ever answered) with
its readings, before them. A reading of slot k lies in ``[due_k, due_k + period)``, so each
expected slot of a window is exactly one of:

* **stored**: a reading of the channel lies in its interval (even after the run's end or a window's: a
  slot due before it may be polled late; only the channel's next session's first slot cuts it short);
* **skipped**: a gap row covers it (the poller said so, with why);
* **down**: after the last slot a session accounted for, in a session that ended — the runner
  died (its grid runs until the channel's next session's first slot: the resumed runner's, or the
  rig's next run's), stopped, or its run ended;
* **pending**: the same, in the newest session while it still polls (not yet written);
* **lost**: none of these, before the session's last accounted slot — a reading the poller
  produced that never reached the store. It must be 0.

``expected = stored + skipped + down + pending + lost``, per channel and in total.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, NamedTuple

from sqlalchemy import ColumnElement, Connection, Engine, func, insert, select, update
from sqlmodel import col

from store.audit import read_snapshot as snapshot
from store.repositories import runs
from store.repositories.reading import new_id
from store.repositories.reading import read as _read
from store.schema import Channel, PollGap, PollSchedule, PollSession, Reading

REASONS = ("late", "no_value")


class GapRow(NamedTuple):
    """Slots ``first_slot`` … ``first_slot + slots − 1`` of a channel served without a reading."""

    channel_id: int
    first_slot: int
    slots: int
    reason: str


def open_session(connection: Connection, run_id: int, pid: int, started_utc_s: float) -> int:
    """A poller's session on a run (its schedule follows once the poller has planned it: ``add_schedule``)."""
    return new_id(connection.execute(insert(PollSession).values(run_id=run_id, pid=pid, started_utc_s=started_utc_s)))


def add_schedule(connection: Connection, session_id: int, schedule: dict[int, tuple[float, float]]) -> None:
    """``schedule``: channel id → (slot 0 due time, period), run clock seconds."""
    if schedule:
        connection.execute(
            insert(PollSchedule),
            [
                {"session_id": session_id, "channel_id": cid, "first_due_utc_s": first, "period_s": period}
                for cid, (first, period) in schedule.items()
            ],
        )


def add_gaps(connection: Connection, session_id: int, gaps: Iterable[GapRow]) -> int:
    rows = [{"session_id": session_id, **g._asdict()} for g in gaps]
    for row in rows:
        if row["reason"] not in REASONS or row["slots"] < 1 or row["first_slot"] < 0:
            raise ValueError(f"a poll gap needs a reason in {REASONS}, slots ≥ 1 and first_slot ≥ 0, not {row}")
    if rows:
        connection.execute(insert(PollGap), rows)
    return len(rows)


def close_session(connection: Connection, session_id: int, stopped_utc_s: float) -> None:
    connection.execute(update(PollSession).where(col(PollSession.id) == session_id).values(stopped_utc_s=stopped_utc_s))


@dataclass
class SlotCounts:
    """Poll slots of one channel (or a sum of channels), each counted once; units: slots."""

    expected: int = 0
    stored: int = 0
    skipped: int = 0
    down: int = 0
    pending: int = 0
    lost: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)

    def add(self, other: SlotCounts) -> None:
        for name in ("expected", "stored", "skipped", "down", "pending", "lost"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for reason, n in other.skipped_by_reason.items():
            self.skipped_by_reason[reason] = self.skipped_by_reason.get(reason, 0) + n

    def to_dict(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in vars(self).items() if k != "skipped_by_reason"},
            "skipped_by_reason": dict(self.skipped_by_reason),
        }

    def text(self) -> str:
        """One line for people, every figure with its unit."""
        return (
            f"{self.stored} of {self.expected} slots stored, {self.skipped} skipped, {self.down} down"
            + (f", {self.pending} pending" if self.pending else "")
            + f", {self.lost} lost"
        )


@dataclass
class RunLedger:
    run_id: int
    sessions: int
    channels: dict[str, SlotCounts]

    @property
    def total(self) -> SlotCounts:
        total = SlotCounts()
        for counts in self.channels.values():
            total.add(counts)
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "unit": "poll slots",
            "sessions": self.sessions,
            "total": self.total.to_dict(),
            "channels": {name: c.to_dict() for name, c in sorted(self.channels.items())},
        }


class _Grid(NamedTuple):
    session_id: int
    first_s: float
    period_s: float
    end_s: float | None  # slots due before it belong to this grid; None: the open, newest session
    closed: bool
    next_s: float | None = None  # the channel's next session's first slot: its readings are not this grid's


def _slot_at_or_after(grid: _Grid, t_s: float) -> int:
    """The first slot k ≥ 0 due at or after ``t_s`` (due times computed as the poller does)."""
    k = max(0, math.ceil((t_s - grid.first_s) / grid.period_s))
    while k > 0 and grid.first_s + (k - 1) * grid.period_s >= t_s:
        k -= 1
    while grid.first_s + k * grid.period_s < t_s:
        k += 1
    return k


def _slot_of(grid: _Grid, t_s: float) -> int:
    """The slot whose interval [due_k, due_k+1) holds ``t_s``."""
    k = _slot_at_or_after(grid, t_s)
    return k if grid.first_s + k * grid.period_s == t_s else k - 1


def ledger(
    source: Engine | Connection, run_id: int, from_utc_s: float | None = None, to_utc_s: float | None = None
) -> RunLedger:
    """Every polled channel's slots due in [from_utc_s, to_utc_s) of the run's clock (all of the run by
    default; without ``to_utc_s`` the newest session counts up to its last accounted slot).

    On an engine, every query reads one snapshot: a live runner commits a batch of readings with the
    gaps before them, and a gap read before that commit with a reading read after it would count the
    gap's slots lost (issue #13). On a connection, the caller's transaction is the snapshot."""
    if isinstance(source, Engine):
        with snapshot(source) as connection:
            return _ledger(connection, run_id, from_utc_s, to_utc_s)
    return _ledger(source, run_id, from_utc_s, to_utc_s)


def _ledger(source: Connection, run_id: int, from_utc_s: float | None, to_utc_s: float | None) -> RunLedger:
    sessions = _read(
        source,
        select(PollSession)
        .where(col(PollSession.run_id) == run_id)
        .order_by(col(PollSession.started_utc_s), col(PollSession.id)),
    ).all()
    stopped = {s.id: s.stopped_utc_s for s in sessions}
    order = [s.id for s in sessions]
    schedules = _read(
        source,
        select(
            col(PollSchedule.session_id),
            col(PollSchedule.channel_id),
            col(PollSchedule.first_due_utc_s),
            col(PollSchedule.period_s),
            col(Channel.name),
        )
        .join(Channel, col(Channel.id) == col(PollSchedule.channel_id))
        .where(col(PollSchedule.session_id).in_(order)),
    ).all()
    by_channel: dict[tuple[int, str], dict[int, tuple[float, float]]] = {}
    for row in schedules:
        by_channel.setdefault((row.channel_id, row.name), {})[row.session_id] = (row.first_due_utc_s, row.period_s)
    gaps: dict[tuple[int, int], list[tuple[int, int, str]]] = {}
    for g in _read(source, select(PollGap).where(col(PollGap.session_id).in_(order))).all():
        gaps.setdefault((g.session_id, g.channel_id), []).append((g.first_slot, g.slots, g.reason))
    run_ended = runs.get(source, run_id).ended_utc_s if sessions else None
    channels: dict[str, SlotCounts] = {}
    for (channel_id, name), grids_of in by_channel.items():
        starts = _session_starts(source, channel_id)
        counts = SlotCounts()
        for sid in (sid for sid in order if sid in grids_of):
            first, period = grids_of[sid]
            if period <= 0:
                continue  # back-to-back polling has no slots to account
            later = (
                starts[bisect.bisect_right(starts, first)] if bisect.bisect_right(starts, first) < len(starts) else None
            )
            ends = [t for t in (later, stopped[sid], run_ended) if t is not None]
            grid = _Grid(sid, first, period, min(ends) if ends else None, bool(ends), later)
            counts.add(_count(source, channel_id, grid, gaps.get((sid, channel_id), []), from_utc_s, to_utc_s))
        channels[name] = counts
    return RunLedger(run_id, len(sessions), channels)


def _session_starts(source: Engine | Connection, channel_id: int) -> list[float]:
    """Every session's first slot of the channel, of any run, in order: a session's grid (and the
    readings it may claim) ends where the channel's next session begins — the run's own resumed
    runner, or the rig's next run."""
    query = select(col(PollSchedule.first_due_utc_s)).where(col(PollSchedule.channel_id) == channel_id)
    return sorted(float(t) for t in _read(source, query).scalars())


def _count(
    source: Engine | Connection,
    channel_id: int,
    grid: _Grid,
    gaps: list[tuple[int, int, str]],
    from_utc_s: float | None,
    to_utc_s: float | None,
) -> SlotCounts:
    """One channel's slots of one session's grid in the window."""
    lo = 0 if from_utc_s is None else _slot_at_or_after(grid, from_utc_s)
    bounds = [t for t in (grid.end_s, to_utc_s) if t is not None]
    hi_bound = _slot_at_or_after(grid, min(bounds)) if bounds else None  # slots lo … hi − 1, when bounded
    # A slot's reading lies in [due_k, due_k+1), which may end after the grid's end (a run that ends, or
    # a window, during a slot polled late): it is still that slot's. Only the channel's next session's
    # first slot cuts the interval short (its readings are that session's).
    reads_until = [t for t in (grid.next_s,) if t is not None]
    if hi_bound is not None:
        reads_until.append(grid.first_s + hi_bound * grid.period_s)
    in_session: list[ColumnElement[bool]] = [
        col(Reading.channel_id) == channel_id,
        col(Reading.t_utc_s) >= grid.first_s,
    ]
    if reads_until:
        in_session.append(col(Reading.t_utc_s) < min(reads_until))
    last_t = _read(source, select(func.max(Reading.t_utc_s)).where(*in_session)).scalar()
    stored_last = [_slot_of(grid, float(last_t))] if last_t is not None else []
    last = max(stored_last + [a + n - 1 for a, n, _ in gaps], default=-1)  # the last slot accounted for
    hi = hi_bound if hi_bound is not None else last + 1
    if hi <= lo:
        return SlotCounts()
    accounted_hi = min(hi, last + 1)
    stored = 0
    if accounted_hi > lo:
        due = grid.first_s + lo * grid.period_s
        until = grid.first_s + accounted_hi * grid.period_s
        if grid.next_s is not None:  # a dead session's last slot may reach into the next session's time
            until = min(until, grid.next_s)
        where: list[ColumnElement[bool]] = [
            col(Reading.channel_id) == channel_id,
            col(Reading.t_utc_s) >= due,
            col(Reading.t_utc_s) < until,
        ]
        stored = int(_read(source, select(func.count()).select_from(Reading).where(*where)).scalar() or 0)
    by_reason: dict[str, int] = {}
    for a, n, reason in gaps:
        overlap = min(a + n, hi) - max(a, lo)
        if overlap > 0:
            by_reason[reason] = by_reason.get(reason, 0) + overlap
    skipped = sum(by_reason.values())
    tail = hi - max(lo, accounted_hi)
    return SlotCounts(
        expected=hi - lo,
        stored=stored,
        skipped=skipped,
        down=tail if grid.closed else 0,
        pending=0 if grid.closed else tail,
        lost=max(0, max(0, accounted_hi - lo) - stored - skipped),
        skipped_by_reason=by_reason,
    )
