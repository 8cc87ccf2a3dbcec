"""The runner: one process per rig executes a protocol's steps on the shared clock.

    with Runner.start(protocol_path, rig_path, engine, devices, clock, bench=SimBench(sim)) as runner:
        state = runner.run()           # done | aborted | parked | failed

Threads: the step thread (the caller), the acquisition poller (readings → interlocks →
store), the request watcher (panel requests → control). The run's progress is a
checkpoint in ``ProtocolRun.checkpoint_json`` (the step index and the step's start time),
written before each step; everything a step does is idempotent by key (dose intents,
sample labels, one fit / proposal / approval per step), so ``Runner.resume`` first
reconciles unfinished dose intents against the pumps and then re-enters the checkpointed
step without doing anything twice.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sqlalchemy.exc import DBAPIError

from instruments.clock import Clock
from instruments.rig.factory import RigDevices
from instruments.rig.model import Rig
from protocols.errors import ProtocolError
from protocols.language.api import parse_protocol
from protocols.language.interlock import Interlock
from protocols.language.protocol import Protocol
from protocols.language.rig_view import rig_view_from_rig_file
from protocols.language.steps import expand
from protocols.loop.steps import LOOP_STEPS
from protocols.run import notify
from protocols.run.acquire import StoreSink, start_poller
from protocols.run.actions import StepAction
from protocols.run.bench import Bench
from protocols.run.control import Aborted, Control, ParkedUnattended
from protocols.run.health import InstrumentStates
from protocols.run.intents import IntentLog, NeedsPerson
from protocols.run.interlocks import Monitor
from protocols.run.landings import Landings, fit_channels
from protocols.run.notify import Notifier
from protocols.run.record import FINAL_STATES, Recorder
from protocols.run.requests import RequestWatcher
from protocols.run.step_exec import RIG_STEPS
from protocols.run.store_outage import MAX_RECOVERIES, StoreLost, is_store_outage, outage_limit_s, wait_for_store

STEPS: dict[str, StepAction] = {**RIG_STEPS, **LOOP_STEPS}  # every step kind of the language, and what it does

Progress = Callable[[int, int, str], None]
log = logging.getLogger(__name__)


class RunEnded(ProtocolError):
    """``resume`` of a run that is done, aborted or failed: those states are final."""


@dataclass
class RunContext:
    protocol: Protocol
    rig: Rig
    recorder: Recorder
    ids: dict[str, dict[str, int]]
    run_id: int
    clock: Clock
    devices: RigDevices
    bench: Bench | None = None
    notifier: Notifier | None = None
    progress: Progress | None = None
    state: dict[str, Any] = field(default_factory=dict)  # per-run scratch: latest fit, per-chip fits, rounds

    @property
    def rig_id(self) -> int:
        return next(iter(self.ids["rig"].values()))


class Runner:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.steps = expand(ctx.protocol.steps)
        self.control = Control(ctx.clock, ctx.devices.safe_state)
        self.intents = IntentLog(
            ctx.recorder, ctx.devices, ctx.clock, ctx.ids["instruments"], elapse=self.control.elapse_until
        )
        self.monitor = Monitor(
            rig_view_from_rig_file(ctx.rig.spec),
            ctx.protocol.interlocks,
            ctx.clock,
            self._trip,
            on_blind=self._blind,
            poll_periods_s={c.name: c.poll_period_s for c in ctx.rig.channels},
        )
        self.instrument_states = InstrumentStates(ctx.recorder, ctx.devices, ctx.ids["instruments"])
        self.sink = StoreSink(
            ctx.recorder,
            ctx.ids["channels"],
            self.monitor,
            alarm=lambda severity, source, message: ctx.recorder.alarm(
                ctx.rig_id, ctx.run_id, severity, source, message
            ),
            states=self.instrument_states.observe,
        )
        self.watcher = RequestWatcher(ctx.recorder, ctx.run_id, self.control, self.intents.busy)
        self.poller: Any = None
        self._running_recorded = False  # "running" is written once per process, not after each store outage
        notify.attach(ctx)  # [notify]: alarms and "waiting for approval" to people off-site

    # -- construction -------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        protocol_text: str,
        rig: Rig,
        engine: Any,
        devices: Any,
        clock: Any,
        *,
        filename: str = "protocol.toml",
        queue_entry: int | None = None,
        **extra: Any,
    ) -> Runner:
        """A new run (state ``created``); with ``queue_entry``, that queue entry names it from the same commit."""
        protocol = parse_protocol(protocol_text, rig_view_from_rig_file(rig.spec), filename)
        recorder = Recorder(engine, clock.now_s)
        ids = recorder.sync_rig(rig)
        rig_id = next(iter(ids["rig"].values()))
        run_id = recorder.create_run(rig_id, protocol_text, float(clock.rate), queue_entry)
        return cls(RunContext(protocol, rig, recorder, ids, run_id, clock, devices, **extra))

    @classmethod
    def attach(cls, run_id: int, rig: Rig, engine: Any, devices: Any, clock: Any, **extra: Any) -> Runner:
        recorder = Recorder(engine, clock.now_s)
        row = recorder.run_row(run_id)
        protocol = parse_protocol(row.protocol_text, rig_view_from_rig_file(rig.spec), f"run {run_id}")
        return cls(RunContext(protocol, rig, recorder, recorder.sync_rig(rig), run_id, clock, devices, **extra))

    # -- running ------------------------------------------------------------------------
    def run(self) -> str:
        """Run from the checkpoint to the end (or a stop); returns the run's final state.

        A store connection lost mid-step (a database restart) re-enters the step from the
        checkpoint once the store answers (store_outage); past the outage limit, StoreLost."""
        self._start_threads()
        try:
            for recovery in range(MAX_RECOVERIES + 1):
                try:
                    return self._run_steps(recovering=recovery > 0)
                except DBAPIError as exc:
                    if not is_store_outage(exc) or recovery == MAX_RECOVERIES:
                        raise
                    self._ride_out_store_outage(exc)
            raise AssertionError("unreachable")
        finally:
            self._stop_threads()

    def _run_steps(self, *, recovering: bool) -> str:
        ctx, recorder = self.ctx, self.ctx.recorder
        try:
            if recovering:  # the lost transaction may have left a dose in flight: decide it first
                outcomes = self.intents.reconcile(ctx.run_id)
                recorder.audit_entry("run.reconciled", {"intents": outcomes, "after": "store outage"}, ctx.run_id)
            if not self._running_recorded:
                recorder.set_state(ctx.run_id, "running")
                self._running_recorded = True
            point = json.loads(recorder.run_row(ctx.run_id).checkpoint_json or "{}")
            for index in range(int(point.get("step", 0)), len(self.steps)):
                step = self.steps[index]
                started = point.get("started_utc_s") if point.get("step") == index else None
                started = started if started is not None else ctx.clock.now_s()
                recorder.checkpoint(ctx.run_id, {"step": index, "started_utc_s": started, "pid": os.getpid()})
                self.control.check()
                if ctx.progress:
                    ctx.progress(index, len(self.steps), step.kind)
                recorder.step_started(ctx.run_id, index, step.kind)
                detail = STEPS[step.kind](self, index, step, started)
                recorder.step_ended(ctx.run_id, index, "done", detail)
            recorder.checkpoint(ctx.run_id, {"step": len(self.steps)})
            recorder.set_state(ctx.run_id, "done")
            return "done"
        except Aborted as exc:
            recorder.set_state(ctx.run_id, "aborted", str(exc))
            return "aborted"
        except NeedsPerson as exc:
            return self.park(str(exc))
        except ParkedUnattended:  # parked by an interlock, recorded there (safe state, alarm, state)
            return "parked"

    def _ride_out_store_outage(self, exc: DBAPIError) -> None:
        """Wait (bounded) for the store; back: a warning alarm, and the caller re-enters the
        step. Still away after the limit: the rig's safe state, an alarm if it can, StoreLost."""
        ctx = self.ctx
        why = (str(exc.orig or exc).strip().splitlines() or ["connection lost"])[0]
        lost_at, limit_s = time.monotonic(), outage_limit_s()
        while wait_for_store(ctx.recorder.engine, max(limit_s - (time.monotonic() - lost_at), 0.0)):
            try:
                ctx.recorder.alarm(
                    ctx.rig_id,
                    ctx.run_id,
                    "warning",
                    "store",
                    f"run {ctx.run_id}: the store connection was lost ({why}) and answered again after "
                    f"{time.monotonic() - lost_at:.1f} s; the step was re-entered from its checkpoint",
                )
                return
            except DBAPIError as again:  # lost again while recording that it came back: the same outage
                if not is_store_outage(again):
                    raise
        errors = ctx.devices.safe_state()
        message = (
            f"run {ctx.run_id}: the store was unreachable for more than {limit_s:g} s ({why}); the rig is in "
            f"its safe state{f' (errors: {errors})' if errors else ''}; once the database answers, "
            f"`chiptwin resume {ctx.run_id}` continues the run without dosing twice"
        )
        try:  # "when it can": the store may be back by now
            ctx.recorder.alarm(ctx.rig_id, ctx.run_id, "critical", "store", message)
        except DBAPIError:
            pass
        raise StoreLost(message) from None

    def resume(self) -> tuple[list[dict[str, Any]], str]:
        """Reconcile unfinished dose intents first, then continue from the checkpoint.
        A run that has ended (done, aborted, failed) is final: refused before any device is touched."""
        row = self.ctx.recorder.run_row(self.ctx.run_id)
        if row.state in FINAL_STATES:
            raise RunEnded(
                f"run {self.ctx.run_id} is {row.state}, and an ended run is final (nothing was "
                "reconciled or sent); fix: start a new run of the protocol with `chiptwin run`"
            )
        try:
            outcomes = self.intents.reconcile(self.ctx.run_id)
        except NeedsPerson as exc:
            return [], self.park(str(exc))
        self.ctx.recorder.audit_entry("run.reconciled", {"intents": outcomes}, self.ctx.run_id)
        return outcomes, self.run()

    def park(self, why: str) -> str:
        ctx = self.ctx
        ctx.devices.safe_state()
        ctx.recorder.set_state(ctx.run_id, "parked", why)
        ctx.recorder.alarm(ctx.rig_id, ctx.run_id, "critical", "runner", f"run {ctx.run_id} parked: {why}")
        return "parked"

    def _trip(self, interlock: Interlock, channel: str, condition_t_s: float) -> None:
        held = f"{interlock} held on {channel} (reading at clock {condition_t_s:.0f} s)"
        self._act(
            interlock,
            channel,
            held if interlock.stops else f"{interlock} on {channel}",
            f"interlock {interlock}",
            alarm="alarm" in interlock.actions,
        )

    def _blind(self, interlock: Interlock, channel: str, unseen_s: float) -> None:
        """A watched channel without a good reading for its grace period: the interlock cannot
        see, so it acts as if it held (stopping ones stop the run; every one raises an alarm)."""
        why = (
            f"interlock {interlock} is blind: {channel} has had no good reading for {unseen_s:.0f} s "
            f"(grace {self.monitor.grace_s[channel]:.0f} s)"
        )
        self._act(interlock, channel, why, why, alarm=True)

    def _act(self, interlock: Interlock, channel: str, message: str, why: str, *, alarm: bool) -> None:
        """The interlock's actions: stopping ones put the rig in its safe state first, then the alarm."""
        ctx = self.ctx
        if interlock.stops:
            state = (
                "aborted" if "abort" in interlock.actions else "paused" if "pause" in interlock.actions else "parked"
            )
            self.control.stop(state, why)
        if alarm or interlock.stops:
            ctx.recorder.alarm(
                ctx.rig_id,
                ctx.run_id,
                "critical",
                f"interlock:{channel}",
                message + ("; instruments put in their safe state" if interlock.stops else ""),
            )
        if interlock.stops and self.control.state != "aborted":
            ctx.recorder.set_state(ctx.run_id, self.control.state, why)

    def _start_threads(self) -> None:
        self.instrument_states.observe()  # every instrument's state as the run starts (lost: no driver)
        # the poll session first: the poller's gaps are stored in it from its first batch on
        session_id = self.sink.session_id = self.ctx.recorder.open_poll_session(self.ctx.run_id)
        # and its slot grid before the first poll: a kill right after the first batch must find the grid
        ids = self.ctx.ids["channels"]

        def keep_schedule(grid: dict[str, Any]) -> None:
            self.ctx.recorder.poll_schedule(session_id, {ids[name]: g for name, g in grid.items()})

        self.poller, skipped = start_poller(self.ctx.rig, self.ctx.devices, self.sink, self.ctx.clock, keep_schedule)
        # a stepped clock lands on the fit's readings and never outruns an interlock's (protocols.run.landings)
        paced = {c.name: c.poll_period_s for c in self.ctx.rig.channels if c.name in self.monitor.grace_s}
        self.control.landings = Landings(self.poller, fit_channels(self.ctx.rig), paced, self.monitor.last_good_s)
        self.control.landings.failing = self.sink.failing_now
        for why in skipped:
            self.ctx.recorder.alarm(self.ctx.rig_id, self.ctx.run_id, "warning", "acquisition", f"not polled: {why}")
        self.watcher.start()
        self.monitor.start_watchdog()

    def _stop_threads(self) -> None:
        self.monitor.stop_watchdog()
        self.watcher.stop()
        if self.poller is not None:
            self.control.landings = None
            self.poller.stop()
            self.poller = None
            self._close_poll_session()
        if self.ctx.notifier is not None:
            self.ctx.notifier.flush(10.0)  # bounded: a dead mail server never holds the run's end

    def _close_poll_session(self) -> None:
        """The poller's last gaps and its clean stop to the store; a store that is away keeps neither
        (the ledger then counts the session's unwritten tail as down, never as lost)."""
        if self.sink.session_id is None:
            return
        try:
            self.sink.store_gaps()
            self.ctx.recorder.close_poll_session(self.sink.session_id)
        except DBAPIError as exc:
            log.warning("run %s: the poll session's end was not stored: %s", self.ctx.run_id, exc)
        self.sink.session_id = None

    # -- convenience --------------------------------------------------------------------
    @property
    def run_id(self) -> int:
        return self.ctx.run_id


def read_text(path: str | Path) -> str:
    return Path(path).read_text(encoding="utf-8")
