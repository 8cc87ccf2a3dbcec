"""One rig, one owner: the lease a runner holds on its rig while it drives it.

    with hold_rig(engine, "liver4", command="run") as lease:   # LeaseRefused if someone holds it
        ... open the ports, run ...
        lease.attach_run(run_id)

A lease is a ``RigLease`` row keyed by the rig name. Taking it is one statement that only
one writer can win on either backend: an INSERT that does nothing on conflict, or — to take
over a holder that is gone — an UPDATE conditional on the token read a moment before
(compare-and-swap), so two processes racing can never both win. A heartbeat thread renews
the row every ``heartbeat_s``; the row is deleted on a clean exit. Times are wall-clock
(``time.time()``), never the accelerated run clock.

A holder is *gone* when its heartbeat has expired, or when it ran on this host and its pid
no longer exists (a SIGKILLed runner is gone at once, not after the expiry). Hosts are told
apart by name: ``$CHIPTWIN_LEASE_HOST`` overrides it where several containers share one.
"""

from __future__ import annotations

import getpass
import logging
import math
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from sqlalchemy import Connection, Engine, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlmodel import col

from store.audit import append_audit
from store.errors import StoreError
from store.schema import RigLease as LeaseRow

log = logging.getLogger("store.lease")

EXPIRY_ENV, HEARTBEAT_ENV, HOST_ENV = "CHIPTWIN_LEASE_EXPIRY_S", "CHIPTWIN_LEASE_HEARTBEAT_S", "CHIPTWIN_LEASE_HOST"
DEFAULT_EXPIRY_S = 30.0
DEFAULT_HEARTBEAT_S = 5.0
_TAKE_ATTEMPTS = 10  # a holder releasing while we look, or an audit append racing another writer


class LeaseError(StoreError):
    """The lease settings are unusable (the message names the variable and the fix)."""


class LeaseRefused(StoreError):
    """Somebody else holds the rig (or the run); the message names them and how to take over safely."""


# -- settings and identity -------------------------------------------------------------------
@dataclass(frozen=True)
class LeaseTiming:
    expiry_s: float = DEFAULT_EXPIRY_S
    heartbeat_s: float = DEFAULT_HEARTBEAT_S

    @classmethod
    def from_env(cls) -> LeaseTiming:
        """``$CHIPTWIN_LEASE_EXPIRY_S`` and ``$CHIPTWIN_LEASE_HEARTBEAT_S`` (wall seconds) or the defaults."""
        timing = cls(_env_seconds(EXPIRY_ENV, DEFAULT_EXPIRY_S), _env_seconds(HEARTBEAT_ENV, DEFAULT_HEARTBEAT_S))
        if timing.heartbeat_s * 2 > timing.expiry_s:
            raise LeaseError(
                f"{HEARTBEAT_ENV}={timing.heartbeat_s:g} s is more than half of {EXPIRY_ENV}="
                f"{timing.expiry_s:g} s: one late heartbeat would let another runner take the rig; "
                "fix: a heartbeat at most half the expiry (defaults 5 s and 30 s)"
            )
        return timing


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise LeaseError(f"{name}={raw!r} is not a positive number of seconds; fix: e.g. {name}={default:g}")
    return value


def this_host() -> str:
    return os.environ.get(HOST_ENV, "").strip() or socket.gethostname()


def pid_exists(pid: int) -> bool:
    """True while ``pid`` is a live process on this host (a zombie holds no port: it counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc: os.kill said it exists


def utc_text(t_utc_s: float) -> str:
    return datetime.fromtimestamp(t_utc_s, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


# -- who holds what ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Holder:
    rig_name: str
    token: str
    holder_host: str
    holder_pid: int
    holder_command: str
    run_id: int | None
    acquired_utc_s: float
    heartbeat_utc_s: float
    expires_utc_s: float

    def expired(self, now_utc_s: float) -> bool:
        return now_utc_s >= self.expires_utc_s

    def pid_gone(self) -> bool:
        """Only answerable on the holder's own host; elsewhere only the expiry tells."""
        return self.holder_host == this_host() and not pid_exists(self.holder_pid)

    def gone_because(self, now_utc_s: float) -> str:
        """Why the holder counts as gone ("" while it is alive)."""
        if self.pid_gone():
            return f"pid {self.holder_pid} no longer exists on {self.holder_host}"
        if self.expired(now_utc_s):
            return f"its heartbeat expired {now_utc_s - self.expires_utc_s:.0f} s ago"
        return ""

    def who(self) -> str:
        run = f"run {self.run_id}" if self.run_id is not None else "a run not yet numbered"
        command = f", `chiptwin {self.holder_command}`" if self.holder_command else ""
        return f"host {self.holder_host} pid {self.holder_pid} ({run}{command})"

    def describe(self, now_utc_s: float) -> str:
        """One line: who, since when (wall-clock UTC), how fresh its heartbeat is."""
        age_s = now_utc_s - self.heartbeat_utc_s
        return f"{self.who()} since {utc_text(self.acquired_utc_s)}, last heartbeat {age_s:.0f} s ago" + (
            " (expired)" if self.expired(now_utc_s) else f" (expires in {self.expires_utc_s - now_utc_s:.0f} s)"
        )


def _holder(row: Any) -> Holder:
    return Holder(**{name: getattr(row, name) for name in Holder.__dataclass_fields__})


def holder_of(engine: Engine | Connection, rig_name: str) -> Holder | None:
    return _first(engine, select(LeaseRow).where(col(LeaseRow.rig_name) == rig_name))


def run_holder(engine: Engine | Connection, run_id: int) -> Holder | None:
    """The lease (on any rig) whose holder drives ``run_id``, if any."""
    return _first(engine, select(LeaseRow).where(col(LeaseRow.run_id) == run_id))


def holders(engine: Engine) -> list[Holder]:
    with engine.connect() as connection:
        return [_holder(row) for row in connection.execute(select(LeaseRow).order_by(col(LeaseRow.rig_name)))]


def _first(engine: Engine | Connection, query: Any) -> Holder | None:
    if isinstance(engine, Connection):
        row = engine.execute(query).first()
    else:
        with engine.connect() as connection:
            row = connection.execute(query).first()
    return None if row is None else _holder(row)


def lease_rows(engine: Engine, rig_names: Iterable[str] = (), now_utc_s: float | None = None) -> list[dict[str, Any]]:
    """Each rig's holder for the panel and ``chiptwin rig status``; ``rig_names`` adds free rigs."""
    held = {h.rig_name: h for h in holders(engine)}
    now = time.time() if now_utc_s is None else now_utc_s  # after the read: a heartbeat is never in the future
    rows = []
    for name in sorted(set(rig_names) | set(held)):
        h = held.get(name)
        rows.append(
            {
                "rig": name,
                "held": h is not None,
                "holder": h.who() if h else "free",
                "since_utc": utc_text(h.acquired_utc_s) if h else "",
                "heartbeat_age_s": round(now - h.heartbeat_utc_s, 1) if h else None,
                "expired": h.expired(now) if h else None,
                "gone": bool(h.gone_because(now)) if h else None,
            }
        )
    return rows


# -- taking, keeping, giving back ----------------------------------------------------------------
def refuse_if_run_alive(engine: Engine, run_id: int, now_utc_s: float | None = None) -> None:
    """A resume must not compete with the runner still driving the run."""
    now = time.time() if now_utc_s is None else now_utc_s
    holder = run_holder(engine, run_id)
    if holder is not None and not holder.gone_because(now):
        raise LeaseRefused(
            f"run {run_id} is still being driven on rig {holder.rig_name} by {holder.describe(now)}; "
            "a resume now would compete with it — wait for it to end, pause or abort it from the panel, "
            "or resume once its heartbeat has expired or its pid is gone"
        )


@dataclass
class RigLease:
    """A lease this process holds; ``start_heartbeat()`` keeps it, ``release()`` gives it back."""

    engine: Engine
    rig_name: str
    token: str
    timing: LeaseTiming
    taken_over: Holder | None = None
    on_lost: Callable[[Holder | None], None] | None = None

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def attach_run(self, run_id: int) -> None:
        """Name the run this lease drives (``chiptwin run`` knows it only after creating it)."""
        with self.engine.begin() as connection:
            connection.execute(update(LeaseRow).where(*self._mine()).values(run_id=run_id))

    def renew(self, now_utc_s: float | None = None) -> bool:
        """Push the expiry forward; False when the lease is no longer ours (taken over)."""
        now = time.time() if now_utc_s is None else now_utc_s
        with self.engine.begin() as connection:
            changed = connection.execute(
                update(LeaseRow)
                .where(*self._mine())
                .values(heartbeat_utc_s=now, expires_utc_s=now + self.timing.expiry_s)
            ).rowcount
        return changed == 1

    def release(self) -> None:
        self.stop_heartbeat()
        if self.lost:
            return
        try:
            with self.engine.begin() as connection:
                connection.execute(delete(LeaseRow).where(*self._mine()))
        except SQLAlchemyError as exc:  # the store went away: the lease expires by itself
            log.warning("could not release the lease on rig %s (%s); it expires by itself", self.rig_name, exc)

    # -- the heartbeat ------------------------------------------------------------------------
    def start_heartbeat(self) -> RigLease:
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.rig_name}", daemon=True)
        self._thread.start()
        return self

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.timing.heartbeat_s + 15.0)
        self._thread = None

    def _beat(self) -> None:
        while not self._stop.wait(self.timing.heartbeat_s):
            try:
                if self.renew():
                    continue
            except SQLAlchemyError as exc:  # keep trying: a short outage must not stop a run
                log.warning("lease heartbeat for rig %s failed (%s); retrying", self.rig_name, exc)
                continue
            self.lost = True
            if self.on_lost is not None:
                self.on_lost(holder_of(self.engine, self.rig_name))
            return

    def _mine(self) -> tuple[Any, ...]:
        return col(LeaseRow.rig_name) == self.rig_name, col(LeaseRow.token) == self.token

    def __enter__(self) -> RigLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire(
    engine: Engine,
    rig_name: str,
    *,
    command: str = "",
    run_id: int | None = None,
    take_over: bool = False,
    adopt_run: int | None = None,
    timing: LeaseTiming | None = None,
    now: Callable[[], float] = time.time,
) -> RigLease:
    """Take the rig, or raise LeaseRefused naming the holder.

    A holder that is alive is never displaced. One that is gone is taken over when
    ``take_over`` is set, or — for a resume — when it held ``adopt_run`` (or no run yet):
    resuming its own crashed run is what a resume is for. The take-over is audited.
    """
    timing = timing or LeaseTiming.from_env()
    token = uuid.uuid4().hex
    me = dict(
        token=token, holder_host=this_host()[:255], holder_pid=os.getpid(), holder_command=command[:32], run_id=run_id
    )
    for _ in range(_TAKE_ATTEMPTS):
        t = now()
        stamps = dict(acquired_utc_s=t, heartbeat_utc_s=t, expires_utc_s=t + timing.expiry_s)
        if _insert_if_free(engine, {"rig_name": rig_name, **me, **stamps}):
            return RigLease(engine, rig_name, token, timing)
        holder = holder_of(engine, rig_name)
        if holder is None:
            continue  # released while we looked: try again
        why_gone = holder.gone_because(t)
        if not why_gone:
            raise LeaseRefused(
                f"rig {rig_name} is held by {holder.describe(t)}; wait for it to end or stop it from the panel "
                f"(--take-over is accepted only once its heartbeat has expired or its pid is gone from "
                f"{holder.holder_host})"
            )
        adopting = adopt_run is not None and holder.run_id in (None, adopt_run)
        if not (take_over or adopting):
            resume = f"`chiptwin resume {holder.run_id}` continues its run, or " if holder.run_id is not None else ""
            raise LeaseRefused(
                f"rig {rig_name} was held by {holder.who()} since {utc_text(holder.acquired_utc_s)}, and it is "
                f"gone ({why_gone}); its run may have left doses unconfirmed: {resume}"
                "repeat with --take-over to take the rig anyway (audited)"
            )
        if _swap_holder(engine, holder, {**me, **stamps}, why_gone, explicit=take_over and not adopting):
            return RigLease(engine, rig_name, token, timing, taken_over=holder)
    raise LeaseRefused(
        f"rig {rig_name}: the lease changed hands {_TAKE_ATTEMPTS} times while we tried to take it; "
        "another runner is starting — check with `chiptwin rig status`"
    )


def _insert_if_free(engine: Engine, values: dict[str, Any]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING: exactly one of any number of racers inserts the row."""
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    with engine.begin() as connection:
        # RETURNING, not rowcount: psycopg reports -1 for an INSERT … ON CONFLICT
        statement = insert(LeaseRow).values(**values).on_conflict_do_nothing().returning(col(LeaseRow.rig_name))
        return connection.execute(statement).first() is not None


def _swap_holder(engine: Engine, old: Holder, new: dict[str, Any], why_gone: str, *, explicit: bool) -> bool:
    """Compare-and-swap on the gone holder's token, audited in the same transaction."""
    try:
        with engine.begin() as connection:
            swapped = connection.execute(
                update(LeaseRow)
                .where(col(LeaseRow.rig_name) == old.rig_name, col(LeaseRow.token) == old.token)
                .values(**new)
            ).rowcount
            if swapped != 1:
                return False  # another claimant swapped first; nothing was changed
            append_audit(
                connection,
                _actor(),
                "rig.lease_taken_over",
                entity="rig",
                entity_id=old.rig_name,
                payload={
                    "previous": {k: v for k, v in old.__dict__.items() if k != "token"},
                    "why_gone": why_gone,
                    "explicit_take_over": explicit,
                    "by": {k: v for k, v in new.items() if k != "token"},
                },
            )
    except (IntegrityError, OperationalError):  # the audit append raced another writer: look again
        return False
    return True


def _actor() -> str:
    try:
        return getpass.getuser()[:64]
    except (KeyError, OSError):
        return "runner"


def hold_rig(
    engine: Engine, rig_name: str, *, on_lost: Callable[[Holder | None], None] | None = None, **kwargs: Any
) -> RigLease:
    """``acquire`` and start the heartbeat; use as a context manager (released on exit)."""
    lease = acquire(engine, rig_name, **kwargs)
    lease.on_lost = on_lost
    return lease.start_heartbeat()


__all__ = [
    "Holder",
    "LeaseError",
    "LeaseRefused",
    "LeaseTiming",
    "RigLease",
    "acquire",
    "hold_rig",
    "holder_of",
    "holders",
    "lease_rows",
    "refuse_if_run_alive",
    "run_holder",
    "this_host",
]
