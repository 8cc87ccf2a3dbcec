"""The lab supervisor: one per lab machine, it keeps one runner per active rig it owns.

Each tick it reaps its children (``waitpid``, every ``poll_s``) and, for each rig, decides:

* a live runner (its child, or one it adopted after a restart) → nothing to do;
* first after start-up: entries of the rig left ``starting`` (a supervisor killed between its claim
  and its runner creating the run) go back on the queue: an entry is linked to its run in the
  commit that creates the run, so a ``starting`` one never ran (``registry.requeue_orphans``);
* an open run that is ``running``/``created`` with no live runner → `chiptwin resume` at once
  (the runner's pid is gone on this host, so its lease is taken over without waiting); a run
  whose runner died ``max_quick_deaths`` times in a row within ``quick_death_s`` is parked with
  a critical alarm instead;
* an open run that is parked or paused → it waits for a person; the rig starts nothing new;
* otherwise the rig's next due queue entry is claimed and started (`chiptwin run --queue-entry`).

A runner is started in a *spare runner*: a process started ahead of need that has done a runner's
imports and waits for its command line (ui.cli.spare_runner), so a restart does not wait for them;
a new spare is started ``SPARE_DELAY_S`` later (``spare_runner = false`` in the lab file: none).

Its health (children, restarts) is its heartbeat in the store (store.ownership). SIGTERM/SIGINT
stop it: children get SIGTERM (runners stay resumable), the rigs are released, exit 0.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from protocols.lab import registry
from protocols.lab.children import Child, endpoint_command, runner_command, spawn, start_spare, use_spare
from protocols.lab.lab_file import Lab, LabRig
from store import ownership
from store.engine import resolve_url
from store.lease import holder_of
from store.repositories import queue
from store.states import QueueState

log = logging.getLogger("protocols.lab.supervisor")
KILL_AFTER_CLAIM_ENV = "CHIPTWIN_LAB_KILL_AFTER_CLAIM"  # tests: SIGKILL the supervisor right after a claim
QUEUE_CHECK_S = 1.0  # an idle rig looks at its queue this often (wall seconds)
SPARE_DELAY_S = 2.0  # a new spare runner waits this long after one was used: the new runner gets the CPU first


@dataclass
class RigWatch:
    """What the supervisor knows about one rig between ticks."""

    lab_rig: LabRig
    child: Child | None = None
    quick_deaths: dict[int, int] = field(default_factory=dict)  # run id → deaths in a row soon after a start
    restarts: int = 0
    next_look_mono_s: float = 0.0
    recover_claims: bool = True  # look for entries a previous supervisor claimed but never started


@dataclass
class Supervisor:
    lab: Lab
    engine: Engine
    db: str | None = None  # as the user gave it: the runners resolve it the same way
    opcua: str | None = None
    sila: str | None = None
    log_dir: Path | None = None

    def __post_init__(self) -> None:
        self.name = self.lab.supervisor.name
        self.spec = self.lab.supervisor
        self.rigs = {r.name: RigWatch(r) for r in self.lab.rigs}
        self.endpoints: dict[str, Child | None] = {
            k: None for k, v in (("opcua", self.opcua), ("sila", self.sila)) if v
        }
        self.endpoint_restarts = 0
        self.stopping = threading.Event()
        self.logs = self.log_dir or self.lab.path.parent / "logs"
        self.expiry_s = max(3 * self.spec.heartbeat_s, 10.0)
        self.spare: subprocess.Popen[bytes] | None = None  # a runner that has done its imports (ui.cli.spare_runner)
        self.spare_after_mono_s = 0.0

    # -- life cycle ---------------------------------------------------------------------------
    def register(self) -> None:
        """Own the rigs (OwnershipRefused names a live other owner) and make them known to the queue."""
        ownership.register(self.engine, self.name, list(self.rigs), expiry_s=self.expiry_s)
        registry.register_rig_files(self.engine, self.lab)

    def serve(self, max_wall_s: float | None = None) -> None:
        """Until SIGTERM/SIGINT (or ``max_wall_s``); then stop the children and free the rigs."""
        self._handle_signals()
        deadline = None if max_wall_s is None else time.monotonic() + max_wall_s
        next_beat = 0.0
        try:
            while not self.stopping.is_set() and (deadline is None or time.monotonic() < deadline):
                try:
                    self.tick()
                    if time.monotonic() >= next_beat:
                        self._beat()
                        next_beat = time.monotonic() + self.spec.heartbeat_s
                except SQLAlchemyError as exc:  # a store outage: the runners keep going, we look again
                    log.warning("supervisor %s: store unavailable (%s); retrying", self.name, exc)
                self.stopping.wait(self.spec.poll_s)
        finally:
            self.shutdown()

    def _handle_signals(self) -> None:
        def stop(signum: int, frame: FrameType | None) -> None:
            self.stopping.set()

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)

    def shutdown(self) -> None:
        if self.spare is not None and self.spare.poll() is None:
            self.spare.kill()  # it has run nothing yet
            self.spare.wait(30)
        children = [w.child for w in self.rigs.values() if w.child] + [c for c in self.endpoints.values() if c]
        for child in children:  # SIGTERM to all first, then wait: they stop in parallel
            _terminate(child)
        for child in children:
            child.stop(grace_s=10.0)
        try:
            ownership.unregister(self.engine, self.name)
        except SQLAlchemyError as exc:
            log.warning(
                "could not release the rigs of %s (%s); they are free once its heartbeat expires", self.name, exc
            )

    # -- one pass ----------------------------------------------------------------------------
    def tick(self) -> None:
        for watch in self.rigs.values():
            self._tend(watch)
        for kind in self.endpoints:
            self._tend_endpoint(kind)
        self._keep_spare()

    def _keep_spare(self) -> None:
        if not self.spec.spare_runner:
            return
        if self.spare is not None and self.spare.poll() is not None:  # died unused: try again later
            self.spare, self.spare_after_mono_s = None, time.monotonic() + SPARE_DELAY_S
        if self.spare is None and time.monotonic() >= self.spare_after_mono_s:
            self.spare = start_spare(self.logs / f"{self.name}-spare.log")

    def _runner(self, role: str, command: list[str], log_path: Path, **fields: object) -> Child:
        """A runner for ``command``: the spare runner if there is one (its imports done), else a new process."""
        child = use_spare(self.spare, role, command, log_path, **fields) if self.spare is not None else None
        self.spare, self.spare_after_mono_s = None, time.monotonic() + SPARE_DELAY_S
        return child or spawn(role, command, log_path, **fields)  # type: ignore[arg-type]

    def _tend(self, watch: RigWatch) -> None:
        if watch.child is not None:
            code = watch.child.exit_code()
            if code is None:
                return
            self._ended(watch, watch.child, code)
            watch.child = None
            watch.next_look_mono_s = 0.0  # act at once: a dead runner is resumed now
        if time.monotonic() < watch.next_look_mono_s:
            return
        watch.next_look_mono_s = time.monotonic() + QUEUE_CHECK_S
        self._decide(watch)

    def _decide(self, watch: RigWatch) -> None:
        rig = watch.lab_rig.name
        holder = holder_of(self.engine, rig)
        if holder is not None and not holder.gone_because(time.time()):
            watch.child = Child("adopted", holder.holder_pid, rig_name=rig, run_id=holder.run_id)
            log.info("supervisor %s adopts the runner of rig %s: %s", self.name, rig, holder.who())
            return
        if watch.recover_claims:  # once per rig after start-up (and after a runner that never linked its entry)
            for entry_id in registry.requeue_orphans(self.engine, rig, supervisor=self.name):
                log.warning(
                    "supervisor %s re-queued entry %s of rig %s: claimed, never started", self.name, entry_id, rig
                )
            watch.recover_claims = False
        open_runs = registry.open_runs(self.engine, rig)
        resumable = [r for r in open_runs if r.resumable]
        if resumable:
            self._resume(watch, resumable[-1].run_id)
        elif not open_runs:
            self._start_next(watch, take_over=holder is not None)

    def _resume(self, watch: RigWatch, run_id: int) -> None:
        deaths = watch.quick_deaths.get(run_id, 0)
        if deaths >= self.spec.max_quick_deaths:
            reason = (
                f"the runner of run {run_id} on rig {watch.lab_rig.name} died {deaths} times in a row within "
                f"{self.spec.quick_death_s:g} s of its start; parked by supervisor {self.name!r}: see its logs in "
                f"{self.logs}, then resume it with `chiptwin resume {run_id}`"
            )
            registry.park(self.engine, run_id, supervisor=self.name, reason=reason)
            log.error(reason)
            return
        watch.restarts += 1
        command = runner_command(watch.lab_rig, self.db, "resume", str(run_id))
        watch.child = self._runner(
            "resume", command, self._log(watch, f"run{run_id}"), rig_name=watch.lab_rig.name, run_id=run_id
        )

    def _start_next(self, watch: RigWatch, *, take_over: bool) -> None:
        rig = watch.lab_rig.name
        entry = queue.next_due(self.engine, rig, time.time())
        if entry is None:
            return
        with self.engine.begin() as c:
            if not queue.claim(c, entry.id, by=self.name):
                return  # cancelled meanwhile
        if os.environ.get(KILL_AFTER_CLAIM_ENV) == "1":  # fault injection (tests): die holding the claim
            os.kill(os.getpid(), signal.SIGKILL)
        args = ["run", "--queue-entry", str(entry.id)] + (["--take-over"] if take_over else [])
        command = runner_command(watch.lab_rig, self.db, *args)
        watch.child = self._runner(
            "run", command, self._log(watch, f"entry{entry.id}"), rig_name=rig, entry_id=entry.id
        )

    def _ended(self, watch: RigWatch, child: Child, code: int) -> None:
        """Book a runner's end: a quick death counts toward parking; an entry it never linked has failed."""
        run_id = child.run_id
        if child.entry_id is not None:
            entry = queue.get(self.engine, child.entry_id)
            run_id = entry.run_id
            if entry.state == QueueState.STARTING:
                with self.engine.begin() as c:
                    queue.mark_failed(
                        c,
                        entry.id,
                        reason=f"its runner exited ({code}) before its run began; see {child.log_path}",
                        now_utc_s=time.time(),
                    )
        if run_id is None or code == 0:
            return
        quick = time.monotonic() - child.started_mono_s < self.spec.quick_death_s
        watch.quick_deaths[run_id] = watch.quick_deaths.get(run_id, 0) + 1 if quick else 0
        log.warning("runner of rig %s (run %s) ended with %s", watch.lab_rig.name, run_id, code)

    # -- endpoints ----------------------------------------------------------------------------
    def _tend_endpoint(self, kind: str) -> None:
        child = self.endpoints[kind]
        if child is not None and child.exit_code() is None:
            return
        if child is not None:
            self.endpoint_restarts += 1
            if time.monotonic() - child.started_mono_s < 1.0:
                return  # it died at once: do not spin; the next tick tries again
        address = self.opcua if kind == "opcua" else self.sila
        assert address is not None
        options = self.lab.opcua_arguments() if kind == "opcua" else None
        command = endpoint_command(kind, resolve_url(self.db), address, options)
        self.endpoints[kind] = spawn(kind, command, self.logs / f"{self.name}-{kind}.log", die_with_parent=True)

    # -- health ---------------------------------------------------------------------------------
    def health(self) -> dict[str, object]:
        rigs = {
            name: {
                "runner_pid": w.child.pid if w.child else None,
                "role": w.child.role if w.child else "idle",
                "run_id": w.child.run_id if w.child else None,
                "queue_entry": w.child.entry_id if w.child else None,
                "restarts": w.restarts,
            }
            for name, w in self.rigs.items()
        }
        endpoints = {k: {"pid": c.pid if c else None} for k, c in self.endpoints.items()}
        spare = self.spare.pid if self.spare is not None else None
        return {"rigs": rigs, "endpoints": endpoints, "endpoint_restarts": self.endpoint_restarts, "spare_pid": spare}

    def _beat(self) -> None:
        if not ownership.beat(self.engine, self.name, self.health(), expiry_s=self.expiry_s):
            log.error("supervisor %s: another process took this supervisor's name; stopping", self.name)
            self.stopping.set()

    def _log(self, watch: RigWatch, what: str) -> Path:
        return self.logs / f"{watch.lab_rig.name}-{what}.log"


def _terminate(child: Child) -> None:
    try:
        os.kill(child.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
