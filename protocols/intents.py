"""Dosing you can trust: a write-ahead intent log reconciled against the pump's own counter.

Every liquid-moving command is a ``Command`` row, committed *before* any byte is sent:

    pending  (key = run/step/chip/attempt, the pump's dispensed counter before = baseline)
      → sent       (the pump accepted DIR/RAT/VOL/RUN)
      → confirmed  (the counter moved by the requested volume: device_reported_amount)
      | failed     (it did not move: nothing was dosed; a new attempt may follow)

After a crash, ``reconcile`` looks at every pending/sent intent and the pump's counter:
moved by the requested volume → confirmed (never dosed again); unchanged → failed as
"not dosed" (the step re-issues it exactly once, as the next attempt); anything else —
a partial volume, a counter below the baseline (pump reset), no answer — cannot be
decided by a program: ``NeedsPerson`` is raised and the runner parks the run with an alarm.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import insert, select, update

from instruments.errors import InstrumentError
from protocols.errors import ProtocolError
from protocols.record import Recorder
from store.schema import Command, DoseEvent, Instrument
from twin.units import Q_

KILL_AFTER_SEND_ENV = "CHIPTWIN_TEST_KILL_AFTER_SEND"  # test hook: SIGKILL self after the Nth send
MAX_ATTEMPTS = 3
DOSE_RATE_UL_MIN = 100.0
SETTLE_WALL_S = 20.0  # how long to wait for a pump to finish before deciding it is stuck
_sends = 0


class NeedsPerson(ProtocolError, RuntimeError):
    """A dose the program cannot decide about: a person must look at the pump and the chip."""


@dataclass(frozen=True)
class DoseOrder:
    run_id: int
    step_index: int
    chip: str
    chip_id: int
    pump: str
    volume_ul: float
    stock_um: float
    drug: str

    def key(self, attempt: int) -> str:
        return f"run{self.run_id}/step{self.step_index}/{self.chip}/a{attempt}"

    @property
    def prefix(self) -> str:
        return f"run{self.run_id}/step{self.step_index}/{self.chip}/"


def tolerance_ul(requested_ul: float) -> float:
    return max(0.02 * requested_ul, 0.05)


class IntentLog:
    def __init__(self, recorder: Recorder, devices: Any, clock: Any, instrument_ids: dict[str, int]) -> None:
        self.recorder, self.devices, self.clock, self.instrument_ids = recorder, devices, clock, instrument_ids
        self.busy = threading.Lock()  # held while a dose is in flight (pause waits for it)

    # -- dosing -------------------------------------------------------------------------
    def dose(self, order: DoseOrder) -> float:
        """Dose once (idempotently): returns the device-reported volume (µL) of the confirmed intent."""
        with self.busy:
            rows = self._intents(order.prefix)
            for row in rows:
                if row.state == "confirmed":
                    return float(row.device_reported_amount or 0.0)
                if row.state in ("pending", "sent"):
                    if self._reconcile_row(row) == "confirmed":
                        return float(self._row(row.id).device_reported_amount or 0.0)
            attempt = len(rows) + 1
            if attempt > MAX_ATTEMPTS:
                raise NeedsPerson(f"{order.prefix}: the pump did not dose in {MAX_ATTEMPTS} attempts; "
                                  f"check {order.pump} and its line, then resume")
            return self._issue(order, attempt)

    def _issue(self, order: DoseOrder, attempt: int) -> float:
        pump = self.devices[order.pump]
        baseline_ul = self._counter_ul(pump, order.pump)
        now = self.recorder.now_s()
        args = {**asdict(order), "attempt": attempt, "baseline_ul": baseline_ul, "rate_ul_min": DOSE_RATE_UL_MIN}
        with self.recorder.tx() as c:  # committed before any byte goes to the pump
            command_id = c.execute(insert(Command).values(
                run_id=order.run_id, idempotency_key=order.key(attempt), instrument_id=self.instrument_ids[order.pump],
                command="dispense", args_json=json.dumps(args), state="pending", requested_amount=order.volume_ul,
                amount_unit="uL", created_utc_s=now, updated_utc_s=now)).inserted_primary_key[0]
        try:
            pump.dispense(Q_(order.volume_ul, "uL"), Q_(DOSE_RATE_UL_MIN, "uL/min"))
        except InstrumentError as exc:
            self._set(command_id, "sent", error=f"send raised: {exc}")
        else:
            self._set(command_id, "sent")
        _maybe_kill_after_send()
        outcome = self._reconcile_row(self._row(command_id))
        if outcome == "confirmed":
            return float(self._row(command_id).device_reported_amount or 0.0)
        return self.dose(order)  # not dosed: the next attempt (bounded by MAX_ATTEMPTS)

    # -- reconciliation -----------------------------------------------------------------
    def reconcile(self, run_id: int) -> list[dict]:
        """Decide every unfinished intent of the run against the pumps; NeedsPerson if one cannot be."""
        with self.engine_connect() as c:
            rows = [Command(**r._mapping) for r in c.execute(select(Command).where(
                Command.run_id == run_id, Command.state.in_(("pending", "sent")))).all()]
        return [{"key": row.idempotency_key, "outcome": self._reconcile_row(row)} for row in rows]

    def engine_connect(self):  # noqa: ANN201 - a SQLAlchemy connection context
        return self.recorder.engine.connect()

    def _reconcile_row(self, row: Command) -> str:
        args = json.loads(row.args_json)
        pump = self.devices[args["pump"]]
        requested = float(row.requested_amount or 0.0)
        try:
            self._wait_stopped(pump)
            delta = self._counter_ul(pump, args["pump"]) - float(args["baseline_ul"])
        except NeedsPerson as exc:
            return self._undecided(row, str(exc))
        tol = tolerance_ul(requested)
        if abs(delta - requested) <= tol:
            self._confirm(row, args, delta)
            return "confirmed"
        if abs(delta) <= tol:
            self._set(row.id, "failed", error="not dosed: the pump's counter did not move")
            return "not_dosed"
        why = (f"the counter is {-delta:.3f} uL below its value before the dose (pump reset?)" if delta < 0 else
               f"only {delta:.3f} of {requested:.3f} uL were dispensed (partial dose)")
        return self._undecided(row, why)

    def _undecided(self, row: Command, why: str) -> str:
        self._set(row.id, row.state, error=f"needs a person: {why}")
        raise NeedsPerson(f"dose {row.idempotency_key}: {why}; a person must check the chip and the pump "
                          "(the run is parked; never guessed)")

    def _confirm(self, row: Command, args: dict, delta_ul: float) -> None:
        now = self.recorder.now_s()
        with self.recorder.tx() as c:
            c.execute(update(Command).where(Command.id == row.id).values(
                state="confirmed", device_reported_amount=delta_ul, updated_utc_s=now))
            c.execute(insert(DoseEvent).values(
                run_id=row.run_id, chip_id=args["chip_id"], command_id=row.id, drug=args["drug"],
                t_utc_s=row.created_utc_s, amount_nmol=delta_ul / 1000.0 * float(args["stock_um"]),
                volume_ml=delta_ul / 1000.0))
            self.recorder.audit(c, "dose.confirmed", "command", row.id,
                                {"key": row.idempotency_key, "requested_ul": row.requested_amount,
                                 "device_reported_ul": delta_ul})

    # -- helpers ------------------------------------------------------------------------
    def _set(self, command_id: int, state: str, error: str = "") -> None:
        with self.recorder.tx() as c:
            c.execute(update(Command).where(Command.id == command_id).values(
                state=state, error=error, updated_utc_s=self.recorder.now_s()))

    def _row(self, command_id: int) -> Command:
        with self.recorder.engine.connect() as c:
            return Command(**c.execute(select(Command).where(Command.id == command_id)).one()._mapping)

    def _intents(self, prefix: str) -> list[Command]:
        with self.recorder.engine.connect() as c:
            rows = c.execute(select(Command).where(Command.idempotency_key.like(prefix + "%"))
                             .order_by(Command.id)).all()
        return [Command(**r._mapping) for r in rows]

    def _counter_ul(self, pump: Any, name: str, attempts: int = 3) -> float:
        """The pump's infused counter (µL); a standing pump alarm is acknowledged by the retry."""
        for attempt in range(attempts):
            try:
                return float(pump.dispensed().to("uL").magnitude)
            except InstrumentError as exc:
                if attempt == attempts - 1:
                    raise NeedsPerson(f"{name}: the dispensed counter cannot be read ({exc})") from None
                self.recorder.alarm(None, None, "warning", name, f"{name}: {exc}; retrying")
        raise AssertionError("unreachable")

    def _wait_stopped(self, pump: Any) -> None:
        deadline = time.monotonic() + SETTLE_WALL_S
        try:
            while pump.is_running():
                if time.monotonic() > deadline:
                    raise NeedsPerson(f"{pump.name} is still pumping after {SETTLE_WALL_S:g} s")
                time.sleep(0.005)
        except InstrumentError as exc:
            raise NeedsPerson(f"{pump.name}: no status ({exc})") from None


def instrument_names(recorder: Recorder, rig_id: int) -> dict[int, str]:
    with recorder.engine.connect() as c:
        return dict(c.execute(select(Instrument.id, Instrument.name).where(Instrument.rig_id == rig_id)).all())


def _maybe_kill_after_send() -> None:
    """Test hook: ``CHIPTWIN_TEST_KILL_AFTER_SEND=N`` kills this process right after the Nth send."""
    global _sends
    target = os.environ.get(KILL_AFTER_SEND_ENV)
    if not target:
        return
    _sends += 1
    if _sends == int(target):
        os.kill(os.getpid(), signal.SIGKILL)
