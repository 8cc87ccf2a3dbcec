"""Lab supervisors and the rigs they own: one supervisor per lab machine, one owner per rig.

    register(engine, "bench-pc-1", ["liver4", "gut2"], expiry_s=30)   # OwnershipRefused naming the owner
    beat(engine, "bench-pc-1", health, expiry_s=30)                    # keeps it alive
    unregister(engine, "bench-pc-1")                                   # its rigs are free again

A supervisor is *alive* while its heartbeat has not expired and — on its own host — its pid
exists (a SIGKILLed supervisor's rigs can be claimed again at once by its restart). Claims are
made in one transaction with a row lock on the owners' rows, so two supervisors registering the
same rig never both win. Times are wall-clock.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any, Sequence

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from store.errors import StoreError
from store.lease import pid_exists, this_host, utc_text
from store.schema import LabSupervisor, RigOwner


class OwnershipRefused(StoreError):
    """A rig owned by another live supervisor, or a supervisor name in use by a live process."""


@dataclass(frozen=True)
class Supervisor:
    name: str
    host: str
    pid: int
    started_utc_s: float
    heartbeat_utc_s: float
    expires_utc_s: float
    health_json: str

    def gone_because(self, now_utc_s: float) -> str:
        """Why it counts as gone ("" while alive)."""
        if self.host == this_host() and not pid_exists(self.pid):
            return f"pid {self.pid} no longer exists on {self.host}"
        if now_utc_s >= self.expires_utc_s:
            return f"its heartbeat expired {now_utc_s - self.expires_utc_s:.0f} s ago"
        return ""

    def who(self) -> str:
        return f"supervisor {self.name!r} (host {self.host} pid {self.pid}, since {utc_text(self.started_utc_s)})"

    @property
    def health(self) -> dict[str, Any]:
        return dict(json.loads(self.health_json or "{}"))


@dataclass(frozen=True)
class Ownership:
    rig_name: str
    supervisor_name: str
    since_utc_s: float


def supervisors(source: Engine | Connection) -> list[Supervisor]:
    query = select(LabSupervisor).order_by(col(LabSupervisor.name))
    return [_supervisor(r) for r in _rows(source, query)]


def owners(source: Engine | Connection) -> list[Ownership]:
    query = select(RigOwner).order_by(col(RigOwner.rig_name))
    return [Ownership(r.rig_name, r.supervisor_name, r.since_utc_s) for r in _rows(source, query)]


def _rows(source: Engine | Connection, query: Any) -> list[Any]:
    if isinstance(source, Connection):
        return list(source.execute(query).all())
    with source.connect() as c:
        return list(c.execute(query).all())


def _supervisor(row: Any) -> Supervisor:
    return Supervisor(**{name: getattr(row, name) for name in Supervisor.__dataclass_fields__})


def register(
    engine: Engine, name: str, rig_names: Sequence[str], *, expiry_s: float, now_utc_s: float | None = None
) -> None:
    """Make this process supervisor ``name`` and the owner of ``rig_names``; all or nothing.

    Refused (nothing changed) when ``name`` is held by another live process, or a rig is owned by
    another live supervisor (named, with how to free it). A gone holder is replaced.
    """
    now = time.time() if now_utc_s is None else now_utc_s
    me = dict(
        host=this_host()[:255], pid=os.getpid(), started_utc_s=now, heartbeat_utc_s=now, expires_utc_s=now + expiry_s
    )
    try:
        with engine.begin() as c:
            _take_name(c, name, me, now)
            _take_rigs(c, name, rig_names, now)
    except IntegrityError:  # another supervisor inserted the same name or rig between our read and write
        raise OwnershipRefused(
            f"supervisor {name!r} or one of its rigs ({', '.join(rig_names)}) was claimed by another supervisor "
            "at the same moment; fix: check `chiptwin lab status` and start one supervisor per machine"
        ) from None


def _take_name(c: Connection, name: str, me: dict[str, Any], now: float) -> None:
    row = c.execute(select(LabSupervisor).where(col(LabSupervisor.name) == name).with_for_update()).first()
    if row is None:
        c.execute(insert(LabSupervisor).values(name=name, health_json="{}", **me))
        return
    held = _supervisor(row)
    if held.pid != me["pid"] or held.host != me["host"]:
        if not held.gone_because(now):
            raise OwnershipRefused(
                f"{held.who()} is running, heartbeat {now - held.heartbeat_utc_s:.0f} s ago; fix: stop it first "
                "(one supervisor per machine), or give this lab file another [supervisor] name"
            )
    c.execute(update(LabSupervisor).where(col(LabSupervisor.name) == name).values(health_json="{}", **me))


def _take_rigs(c: Connection, name: str, rig_names: Sequence[str], now: float) -> None:
    rows = c.execute(select(RigOwner).where(col(RigOwner.rig_name).in_(list(rig_names))).with_for_update()).all()
    current = {r.rig_name: r.supervisor_name for r in rows}
    others = {s.name: s for s in supervisors(c) if s.name in set(current.values()) - {name}}
    for rig in rig_names:
        owner = others.get(current.get(rig, name))
        if owner is not None and not owner.gone_because(now):
            raise OwnershipRefused(
                f"rig {rig!r} is owned by {owner.who()}; a rig has one supervisor; fix: remove it from one of "
                f"the two lab files, or stop {owner.name!r} (`chiptwin lab status` shows who owns what)"
            )
    for rig in rig_names:
        if rig in current:
            c.execute(
                update(RigOwner).where(col(RigOwner.rig_name) == rig).values(supervisor_name=name, since_utc_s=now)
            )
        else:
            c.execute(insert(RigOwner).values(rig_name=rig, supervisor_name=name, since_utc_s=now))


def beat(engine: Engine, name: str, health: dict[str, Any], *, expiry_s: float, now_utc_s: float | None = None) -> bool:
    """Renew supervisor ``name``'s heartbeat with its health report; False when another process took the name."""
    now = time.time() if now_utc_s is None else now_utc_s
    with engine.begin() as c:
        changed = c.execute(
            update(LabSupervisor)
            .where(col(LabSupervisor.name) == name, col(LabSupervisor.pid) == os.getpid())
            .where(col(LabSupervisor.host) == this_host()[:255])
            .values(heartbeat_utc_s=now, expires_utc_s=now + expiry_s, health_json=json.dumps(health))
        ).rowcount
    return changed == 1


def unregister(engine: Engine, name: str) -> None:
    """A clean exit: the rigs and the name are free at once (only when this process still holds them)."""
    with engine.begin() as c:
        mine = c.execute(
            select(col(LabSupervisor.name)).where(
                col(LabSupervisor.name) == name, col(LabSupervisor.pid) == os.getpid()
            )
        ).first()
        if mine is None:
            return
        c.execute(delete(RigOwner).where(col(RigOwner.supervisor_name) == name))
        c.execute(delete(LabSupervisor).where(col(LabSupervisor.name) == name))


__all__ = ["OwnershipRefused", "Ownership", "Supervisor", "beat", "owners", "register", "supervisors", "unregister"]
