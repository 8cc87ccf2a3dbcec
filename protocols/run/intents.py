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
from typing import Any, Callable

from sqlalchemy import insert, select, update

from instruments.capabilities import MeteredPump
from instruments.errors import InstrumentError
from protocols.errors import ProtocolError
from protocols.run.record import Recorder
from store.schema import Command, DoseEvent, Instrument
from twin.units import Q_

KILL_AFTER_SEND_ENV = "CHIPTWIN_TEST_KILL_AFTER_SEND"  # test hook: SIGKILL self after the Nth send
MAX_ATTEMPTS = 3
DOSE_RATE_UL_MIN = 100.0
DISPENSE_MARGIN_S = 1.0  # clock seconds past a dispense's nominal end (the pump's last tick)
SETTLE_WALL_S = 20.0  # how long to wait for a pump to finish before deciding it is stuck
_sends = 0
UNDECIDED = "needs a person: "  # error prefix of an intent that reconciliation could not decide


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
    """How far a pump may deliver from its setpoint and still count as a whole dose."""
    return max(0.02 * requested_ul, 0.05)


@dataclass(frozen=True)
class CounterReading:
    """The pump's dispensed counter (µL) and the step its display reads to at that value."""

    value_ul: float
    step_ul: float = 0.0


def quantisation_ul(before: float, after: float) -> float:
    """The most a counter difference can be off by display rounding: half a step at each end."""
    return 0.5 * (before + after)


class IntentLog:
    def __init__(
        self,
        recorder: Recorder,
        devices: Any,
        clock: Any,
        instrument_ids: dict[str, int],
        elapse: Callable[[float], None] | None = None,
    ) -> None:
        self.recorder, self.devices, self.clock, self.instrument_ids = recorder, devices, clock, instrument_ids
        self.elapse = elapse  # lets a stepped clock run through a dispense (Control.elapse_until)
        self.busy = threading.Lock()  # held while a dose is in flight (pause waits for it)

    # -- dosing -------------------------------------------------------------------------
    def dose(self, order: DoseOrder) -> float:
        """Dose once (idempotently): returns the ledger volume (µL) of the confirmed intent.

        The retry loop lives here, outside any per-attempt work, so a "not dosed" outcome
        is followed by the next attempt (never by a second acquisition of ``busy``); every
        pass adds one intent row, so the loop ends by MAX_ATTEMPTS at the latest.
        """
        with self.busy:
            while True:
                dosed = self._attempt(order)
                if dosed is not None:
                    return dosed

    def _attempt(self, order: DoseOrder) -> float | None:
        """One pass: an earlier confirmed or reconcilable intent wins; else a new attempt.
        None when this attempt did not dose (the pump's counter did not move)."""
        rows = self._intents(order.prefix)
        for row in rows:
            if row.state == "confirmed":
                return self._ledger_ul(row.id)
            if row.state in ("pending", "sent") and self._reconcile_row(row) == "confirmed":
                return self._ledger_ul(row.id)
        attempt = len(rows) + 1
        if attempt > MAX_ATTEMPTS:
            raise NeedsPerson(
                f"{order.prefix}: the pump did not dose in {MAX_ATTEMPTS} attempts; "
                f"check {order.pump} and its line, then resume"
            )
        return self._issue(order, attempt)

    def _issue(self, order: DoseOrder, attempt: int) -> float | None:
        pump = self.devices[order.pump]
        commanded_ul = _commanded_ul(pump, order.volume_ul)
        baseline = self._counter(pump, order.pump, order.run_id)
        _check_resolvable(order, commanded_ul, baseline)
        now = self.recorder.now_s()
        args = {
            **asdict(order),
            "attempt": attempt,
            "baseline_ul": baseline.value_ul,
            "baseline_step_ul": baseline.step_ul,
            "rate_ul_min": DOSE_RATE_UL_MIN,
        }
        with self.recorder.tx() as c:  # committed before any byte goes to the pump
            command_id = c.execute(
                insert(Command).values(
                    run_id=order.run_id,
                    idempotency_key=order.key(attempt),
                    instrument_id=self.instrument_ids[order.pump],
                    command="dispense",
                    args_json=json.dumps(args),
                    state="pending",
                    requested_amount=commanded_ul,
                    amount_unit="uL",
                    created_utc_s=now,
                    updated_utc_s=now,
                )
            ).inserted_primary_key[0]
            self.recorder.seal(c, "command", command_id, "command.pending", {"key": order.key(attempt)})
        try:
            pump.dispense(Q_(commanded_ul, "uL"), Q_(DOSE_RATE_UL_MIN, "uL/min"))
        except InstrumentError as exc:
            self._set(command_id, "sent", error=f"send raised: {exc}")
        else:
            self._set(command_id, "sent")
            if self.elapse is not None:  # a stepped clock: the dispense's clock time passes, landing on its end
                self.elapse(now + commanded_ul / DOSE_RATE_UL_MIN * 60.0 + DISPENSE_MARGIN_S)
        _maybe_kill_after_send()
        if self._reconcile_row(self._row(command_id)) == "confirmed":
            return self._ledger_ul(command_id)
        return None

    # -- reconciliation -----------------------------------------------------------------
    def reconcile(self, run_id: int) -> list[dict]:
        """Decide every unfinished intent of the run against the pumps; NeedsPerson if one cannot be."""
        with self.engine_connect() as c:
            rows = [
                Command(**r._mapping)
                for r in c.execute(
                    select(Command).where(Command.run_id == run_id, Command.state.in_(("pending", "sent")))
                ).all()
            ]
        return [{"key": row.idempotency_key, "outcome": self._reconcile_row(row)} for row in rows]

    def engine_connect(self):  # noqa: ANN201 - a SQLAlchemy connection context
        return self.recorder.engine.connect()

    def _reconcile_row(self, row: Command) -> str:
        """Confirmed, not dosed, or NeedsPerson: the counter's move against the setpoint, with
        the pump's tolerance plus the display rounding at both readings as the margin."""
        args = json.loads(row.args_json)
        pump = self.devices[args["pump"]]
        requested = float(row.requested_amount or 0.0)
        try:
            self._wait_stopped(pump)
            now = self._counter(pump, args["pump"], row.run_id)
        except NeedsPerson as exc:
            return self._undecided(row, str(exc))
        delta = now.value_ul - float(args["baseline_ul"])
        rounding = quantisation_ul(float(args.get("baseline_step_ul", 0.0)), now.step_ul)
        tol = tolerance_ul(requested) + rounding
        if abs(delta - requested) <= tol:
            # Within the display's rounding the counter cannot tell the setpoint from what it
            # shows, and the pump stops at its setpoint: the ledger takes the setpoint then.
            ledger_ul = requested if abs(delta - requested) <= rounding else delta
            self._confirm(row, args, delta, ledger_ul)
            return "confirmed"
        if abs(delta) <= tol and row.error.startswith(UNDECIDED):
            # Once the pump was lost with this dose in flight, "unchanged" is no evidence: a pump
            # that lost power comes back with its counter at zero, which reads as "not dosed"
            # whenever the baseline was zero too — re-issuing would dose the chip twice.
            return self._undecided(
                row,
                f"{args['pump']}'s counter reads its value before the dose, but the pump was lost with "
                "this dose in flight and a power loss resets the counter: not dosed cannot be told from reset",
            )
        if abs(delta) <= tol:
            self._set(row.id, "failed", error="not dosed: the pump's counter did not move")
            return "not_dosed"
        why = (
            f"the counter is {-delta:.3f} uL below its value before the dose (pump reset?)"
            if delta < 0
            else f"only {delta:.3f} of {requested:.3f} uL were dispensed (partial dose)"
        )
        return self._undecided(row, why)

    def _undecided(self, row: Command, why: str) -> str:
        self._set(row.id, row.state, error=f"{UNDECIDED}{why}")
        raise NeedsPerson(
            f"dose {row.idempotency_key}: {why}; a person must check the chip and the pump "
            "(the run is parked; never guessed)"
        )

    def _confirm(self, row: Command, args: dict, delta_ul: float, ledger_ul: float) -> None:
        now = self.recorder.now_s()
        with self.recorder.tx() as c:
            c.execute(
                update(Command)
                .where(Command.id == row.id)
                .values(state="confirmed", device_reported_amount=delta_ul, updated_utc_s=now)
            )
            dose_id = c.execute(
                insert(DoseEvent).values(**dose_event_values(row, args, ledger_ul))
            ).inserted_primary_key[0]
            self.recorder.seal(
                c,
                "command",
                row.id,
                "dose.confirmed",
                {
                    "key": row.idempotency_key,
                    "requested_ul": row.requested_amount,
                    "device_reported_ul": delta_ul,
                    "ledger_ul": ledger_ul,
                },
            )
            self.recorder.seal(c, "doseevent", dose_id, "dose.recorded", {"command_id": row.id, "ledger_ul": ledger_ul})

    # -- helpers ------------------------------------------------------------------------
    def _set(self, command_id: int, state: str, error: str = "") -> None:
        with self.recorder.tx() as c:
            c.execute(
                update(Command)
                .where(Command.id == command_id)
                .values(state=state, error=error, updated_utc_s=self.recorder.now_s())
            )
            self.recorder.seal(c, "command", command_id, f"command.{state}", {"error": error} if error else None)

    def _row(self, command_id: int) -> Command:
        with self.recorder.engine.connect() as c:
            return Command(**c.execute(select(Command).where(Command.id == command_id)).one()._mapping)

    def _intents(self, prefix: str) -> list[Command]:
        with self.recorder.engine.connect() as c:
            rows = c.execute(
                select(Command).where(Command.idempotency_key.like(prefix + "%")).order_by(Command.id)
            ).all()
        return [Command(**r._mapping) for r in rows]

    def _ledger_ul(self, command_id: int) -> float:
        with self.recorder.engine.connect() as c:
            volume_ml = c.execute(select(DoseEvent.volume_ml).where(DoseEvent.command_id == command_id)).scalar()
        return float(volume_ml or 0.0) * 1000.0

    def _counter(self, pump: Any, name: str, run_id: int | None, attempts: int = 3) -> CounterReading:
        """The pump's infused counter and its display step; a standing alarm is acknowledged by the retry."""
        for attempt in range(attempts):
            try:
                reading = pump.dispensed()
                return CounterReading(float(reading.to("uL").magnitude), _step_ul(pump, reading))
            except InstrumentError as exc:
                if attempt == attempts - 1:
                    raise NeedsPerson(f"{name}: the dispensed counter cannot be read ({exc})") from None
                self.recorder.alarm(None, run_id, "warning", name, f"{name}: {exc}; retrying")
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


def _commanded_ul(pump: Any, volume_ul: float) -> float:
    """The volume the pump will actually deliver for a request (its setpoint resolution)."""
    if not isinstance(pump, MeteredPump):
        return volume_ul
    try:
        return float(pump.commanded_volume(Q_(volume_ul, "uL")).to("uL").magnitude)
    except InstrumentError as exc:  # a setpoint the pump cannot take: nothing was sent
        raise NeedsPerson(f"{pump.name} cannot dose {volume_ul:g} uL ({exc}); fix the step or the rig") from None


def _step_ul(pump: Any, reading: Any) -> float:
    if isinstance(pump, MeteredPump):
        return float(pump.counter_resolution(reading).to("uL").magnitude)
    return 0.0


def _check_resolvable(order: DoseOrder, commanded_ul: float, baseline: CounterReading) -> None:
    """Refuse (before any byte is sent) a dose the counter could not tell from no dose at all."""
    margin = tolerance_ul(commanded_ul) + quantisation_ul(baseline.step_ul, baseline.step_ul)
    if commanded_ul <= 2.0 * margin:
        raise NeedsPerson(
            f"{order.prefix}: {order.pump}'s counter reads to {baseline.step_ul:g} uL at {baseline.value_ul:g} uL, "
            f"too coarse to confirm a {commanded_ul:g} uL dose; clear the pump's counter or dose a larger "
            "volume of a weaker stock, then resume"
        )


def dose_event_values(row: Command, args: dict[str, Any], ledger_ul: float) -> dict[str, Any]:
    """The DoseEvent of a confirmed intent: ``ledger_ul`` of the stock into the intent's chip, at its time."""
    return {
        "run_id": row.run_id,
        "chip_id": args["chip_id"],
        "command_id": row.id,
        "drug": args["drug"],
        "t_utc_s": row.created_utc_s,
        "amount_nmol": ledger_ul / 1000.0 * float(args["stock_um"]),
        "volume_ml": ledger_ul / 1000.0,
    }


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
