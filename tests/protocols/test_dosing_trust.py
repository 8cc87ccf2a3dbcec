"""Dosing you can trust under every fault (#17 items 1–6): each fault ends in a safe,
recorded, explained state — never a hang, a wrong chip, a blind interlock or a resumed abort.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import insert, select, update

from protocols.errors import FieldError, ProtocolError
from protocols.language.api import parse_protocol
from protocols.language.interlock import parse_interlock
from protocols.language.plumbing import dosing_pump
from protocols.language.rig_view import ChannelView, ChipView, InstrumentView, SimpleRig
from protocols.run.intents import DoseOrder
from protocols.run.interlocks import BLIND_MIN_WALL_S, Monitor
from protocols.run.runner import RunEnded, Runner
from store.audit import verify_audit
from store.schema import Alarm, Command, DoseEvent, PanelRequest, ProtocolRun
from tests.protocols.conftest import protocol_text as one_chip_protocol
from tests.protocols.runner_helpers import Background, protocol_text, sim_runner, wait_until
from twin.units import Q_

DOSE_THEN_WAIT = """
[[steps]]
kind = "dose"
volume = "10 uL"
amount = "1 nmol"
chips = ["chip1"]

[[steps]]
kind = "wait"
duration = "200 h"

[[steps]]
kind = "dose"
volume = "10 uL"
amount = "1 nmol"
chips = ["chip1"]
"""


def _rows(runner, table, *where):  # noqa: ANN001, ANN202
    with runner.ctx.recorder.engine.connect() as c:
        return c.execute(select(table).where(*where)).all()


def _state(runner) -> str:  # noqa: ANN001
    return _rows(runner, ProtocolRun, ProtocolRun.id == runner.run_id)[0].state


# -- 1. a dose whose pump counter never moves ends parked, with an alarm (it hung for ever) ---
def test_a_stuck_pump_parks_the_run_with_an_alarm_instead_of_hanging(tmp_path) -> None:
    with sim_runner(tmp_path, protocol_text(DOSE_THEN_WAIT)) as (runner, _sim):
        pump = runner.ctx.devices["pump1"]
        pump.dispense = lambda volume, rate: None  # accepts the command; the plunger never moves
        background = Background(runner)
        try:
            assert background.result(60.0) == "parked", "the runner hung on the dose retry"
        finally:
            runner.control.stop("aborted", "test over")
            background.result(10.0)
        attempts = _rows(runner, Command, Command.run_id == runner.run_id)
        assert [a.state for a in attempts] == ["failed", "failed", "failed"]
        assert [a.idempotency_key.rsplit("/", 1)[1] for a in attempts] == ["a1", "a2", "a3"]
        alarms = _rows(runner, Alarm, Alarm.run_id == runner.run_id, Alarm.severity == "critical")
        assert any("did not dose in 3 attempts" in a.message for a in alarms)
        assert runner.control.safe_state_log, "the rig was not put in its safe state"
        assert not _rows(runner, DoseEvent, DoseEvent.run_id == runner.run_id)


# -- 2. a counter past 1,000 µL on a 1 mL syringe reads to 1 µL: no false park, exact ledger ----
def test_counter_past_1000_ul_keeps_an_exact_ledger_over_100_doses(tmp_path) -> None:
    with sim_runner(tmp_path, protocol_text(DOSE_THEN_WAIT)) as (runner, sim):
        state = sim.serial_sims["pump1"].state
        state.infused_ml = 0.950  # 950 µL already infused: the counter shows 1 µL steps after 50 doses
        chip_id = runner.ctx.ids["chips"]["chip1"]
        ledger_ul = [
            runner.intents.dose(DoseOrder(runner.run_id, i, "chip1", chip_id, "pump1", 10.101, 100.0, "apap"))
            for i in range(100)
        ]
        delivered_ul = (state.infused_ml - 0.950) * 1000.0
        doses = _rows(runner, DoseEvent, DoseEvent.run_id == runner.run_id)
        engine = runner.ctx.recorder.engine
        engine.dispose()  # every pooled connection checked in: the audit head is anchored
        report = verify_audit(engine)
        assert report.intact and report.rows_checked >= 200, report.problems  # every command and dose sealed
        with engine.begin() as c:  # an edit behind the program's back: 10.10 µL becomes 1.010 µL
            c.execute(update(DoseEvent).where(DoseEvent.id == doses[0].id).values(volume_ml=0.00101))
        assert any(p.kind == "row-edited" for p in verify_audit(engine).problems)
    assert len(doses) == 100 and all(c == 10.10 for c in ledger_ul)  # VOL takes four digits: 10.10 µL
    assert sum(d.volume_ml for d in doses) * 1000.0 == pytest.approx(delivered_ul, abs=1e-6)
    assert sum(d.amount_nmol for d in doses) == pytest.approx(delivered_ul / 1000.0 * 100.0, rel=1e-9)


# -- 3. a chip without its own pump makes the protocol invalid (it was dosed through pump1) -----
def _rig(*pumps: InstrumentView) -> SimpleRig:
    chips = {c: ChipView(c, Q_(1.0, "mL"), max_dose_volume=Q_(0.2, "mL")) for c in ("c1", "c2")}
    return SimpleRig("two", chips, {p.name: p for p in pumps}, {"o2": ChannelView("o2", "percent", "oxygen", "c1")})


def _pump(name: str, *feeds: str, kind: str = "syringe_pump") -> InstrumentView:
    return InstrumentView(name, kind, Q_(0.2, "mL"), Q_(200, "uL/min"), feeds, Q_(1000, "uM"))


def test_dosing_pump_never_falls_back_to_another_chips_pump() -> None:
    misplumbed = _rig(_pump("p1", "c1"), _pump("p2", "c1"))
    with pytest.raises(FieldError, match="no pump of rig 'two' feeds chip 'c2'"):
        dosing_pump(misplumbed, "c2", None)
    with pytest.raises(FieldError, match="'p1', 'p2' all feed chip 'c1'"):
        dosing_pump(misplumbed, "c1", None)
    with pytest.raises(FieldError, match="pump 'p1' does not feed chip 'c2'"):
        dosing_pump(misplumbed, "c2", "p1")
    assert dosing_pump(misplumbed, "c1", "p2").name == "p2"
    assert dosing_pump(_rig(_pump("p1", "c1"), _pump("p2", "c2")), "c2", None).name == "p2"
    # a perfusion pump serving two chips never doses either of them
    assert pytest.raises(FieldError, dosing_pump, _rig(_pump("r", "c1", "c2", kind="peristaltic_pump")), "c1", None)


def test_protocol_check_refuses_a_dose_for_a_chip_no_pump_feeds() -> None:
    text = one_chip_protocol('[[steps]]\nkind = "dose"\namount = "5 nmol"\nvolume = "10 uL"\n').replace(
        'chips = ["c1"]', 'chips = ["c1", "c2"]'
    )
    with pytest.raises(ProtocolError, match="no pump of rig 'two' feeds chip 'c2'"):
        parse_protocol(text, _rig(_pump("p1", "c1"), _pump("p2", "c1")))


# -- 4. abort is final: a resume of an aborted run is refused before any device is touched -----
def test_resume_of_an_aborted_run_is_refused(tmp_path) -> None:
    with sim_runner(tmp_path, protocol_text(DOSE_THEN_WAIT)) as (runner, _sim):
        background = Background(runner)
        try:
            assert wait_until(lambda: _rows(runner, DoseEvent, DoseEvent.run_id == runner.run_id), 30.0)
            with runner.ctx.recorder.engine.begin() as c:
                c.execute(
                    insert(PanelRequest).values(
                        run_id=runner.run_id,
                        kind="abort",
                        payload_json="{}",
                        requested_by="alice",
                        requested_utc_s=time.time(),
                    )
                )
            assert background.result(30.0) == "aborted"
        finally:
            runner.control.stop("aborted", "test over")
            background.result(10.0)
        ctx = runner.ctx
        sent = len(_rows(runner, Command, Command.run_id == runner.run_id))
        again = Runner.attach(runner.run_id, ctx.rig, ctx.recorder.engine, ctx.devices, ctx.clock)
        with pytest.raises(RunEnded, match="is aborted, and an ended run is final"):
            again.resume()
        assert len(_rows(runner, Command, Command.run_id == runner.run_id)) == sent == 1
        assert _state(runner) == "aborted"
        # no later report of a state (a parked step, a pause) can revive it
        assert ctx.recorder.set_state(runner.run_id, "running") is False and _state(runner) == "aborted"


# -- 5. an interlock that can never trip is refused ---------------------------------------------
@pytest.mark.parametrize(
    "rule",
    [
        "oxygen < nan % -> safe_state",
        "oxygen > inf % -> alarm",
        "oxygen < -inf % for 10 s -> pause",
        "oxygen < 20 % for inf h -> alarm",
        "oxygen < 20 % for nan s -> alarm",
    ],
)
def test_interlocks_that_can_never_trip_are_refused(rule) -> None:
    with pytest.raises(FieldError, match="not a finite"):
        parse_interlock(rule)
    text = one_chip_protocol('[[steps]]\nkind = "wait"\nduration = "1 h"\n', f'"{rule}",\n')
    with pytest.raises(ProtocolError, match="not a finite"):
        parse_protocol(text)


# -- 6. a lost sensor under an interlock acts as the interlock does -----------------------------
class _Clock:
    rate = 1.0

    def __init__(self) -> None:
        self.t = 1000.0

    def now_s(self) -> float:
        return self.t


class _Reading:
    def __init__(self, channel: str, t: float, quality: int = 0) -> None:
        self.channel, self.t_utc_s, self.value, self.quality = channel, t, 80.0, quality


def test_a_watched_channel_without_good_readings_trips_after_its_grace_and_once() -> None:
    rig = _rig(_pump("p1", "c1"))
    blind: list[tuple[str, str, float]] = []
    clock = _Clock()
    monitor = Monitor(
        rig,
        [parse_interlock("oxygen < 5 % for 10 min -> safe_state, alarm")],
        clock,
        lambda *a: None,
        on_blind=lambda i, c, s: blind.append((str(i), c, s)),
        poll_periods_s={"o2": 30.0},
    )
    assert monitor.grace_s == {"o2": 150.0}  # five poll periods (at least a minute)
    monitor.feed([_Reading("o2", 1000.0)])
    wall = monitor._last_good["o2"][1]
    assert monitor.check_blind(1149.0, wall + 60) == []  # within the grace
    monitor.feed([_Reading("o2", 1100.0, quality=4)])  # a DEVICE_ERROR is no sighting
    assert monitor.check_blind(1151.0, wall + BLIND_MIN_WALL_S / 2) == []  # too little wall time yet
    assert monitor.check_blind(1151.0, wall + BLIND_MIN_WALL_S + 1) == ["o2"]
    assert monitor.check_blind(1300.0, wall + 100) == []  # reported once
    assert len(blind) == 1 and blind[0][1] == "o2" and blind[0][2] == pytest.approx(151.0)
    monitor.feed([_Reading("o2", 1301.0)])  # it reads again: watched anew
    assert monitor.check_blind(1460.0, wall + 200) == ["o2"] and len(blind) == 2


def test_a_lost_oxygen_sensor_under_an_interlock_parks_the_run(tmp_path) -> None:
    scenario = 'seed = 1\n[[faults]]\nkind = "dropout"\ndevice = "do1"\nat_s = 1800\nduration_s = 720000\n'
    steps = '[[steps]]\nkind = "wait"\nduration = "400 h"\n'
    text = protocol_text(steps, '"oxygen < 5 % for 10 min -> safe_state, alarm"')
    with sim_runner(tmp_path, text, scenario, rate=3600.0) as (runner, _sim):
        background = Background(runner)
        try:
            assert wait_until(lambda: runner.control.state == "parked", 10.0 * BLIND_MIN_WALL_S), (
                "the oxygen interlock stayed blind"
            )
            assert wait_until(lambda: _state(runner) == "parked", 10.0)
        finally:
            runner.control.stop("aborted", "test over")
            background.result(10.0)
        alarms = _rows(runner, Alarm, Alarm.run_id == runner.run_id, Alarm.severity == "critical")
        blind = [a for a in alarms if "is blind" in a.message]
        assert blind and {a.source for a in blind} == {"interlock:chip1_o2"}, [a.message for a in alarms]
        assert "instruments put in their safe state" in blind[0].message
        assert runner.control.safe_state_log
