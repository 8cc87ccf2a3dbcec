"""`chiptwin lab status`: every supervisor of the lab, alive or not, and each rig's owner, runner and queue."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine

from store import ownership
from store.lease import holders
from store.repositories import queue


@dataclass(frozen=True)
class SupervisorStatus:
    name: str
    host: str
    pid: int
    alive: bool
    why_gone: str
    heartbeat_age_s: float
    health: dict[str, Any]


@dataclass(frozen=True)
class RigStatus:
    rig: str
    supervisor: str
    runner: str  # who holds the rig's lease, or "free"
    run_id: int | None
    queued: int  # entries waiting (queued or starting)


@dataclass(frozen=True)
class LabStatus:
    supervisors: list[SupervisorStatus]
    rigs: list[RigStatus]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def lab_status(engine: Engine, now_utc_s: float | None = None) -> LabStatus:
    now = time.time() if now_utc_s is None else now_utc_s
    sups = [
        SupervisorStatus(
            s.name,
            s.host,
            s.pid,
            not s.gone_because(now),
            s.gone_because(now),
            round(now - s.heartbeat_utc_s, 1),
            s.health,
        )
        for s in ownership.supervisors(engine)
    ]
    held = {h.rig_name: h for h in holders(engine)}
    waiting: dict[str, int] = {}
    for entry in queue.listing(engine, open_only=True):
        waiting[entry.rig_name] = waiting.get(entry.rig_name, 0) + 1
    owned = {o.rig_name: o.supervisor_name for o in ownership.owners(engine)}
    rigs = []
    for name in sorted(set(owned) | set(held) | set(waiting)):
        h = held.get(name)
        rigs.append(
            RigStatus(
                name, owned.get(name, ""), h.who() if h else "free", h.run_id if h else None, waiting.get(name, 0)
            )
        )
    return LabStatus(sups, rigs)
