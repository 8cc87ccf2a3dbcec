"""`chiptwin demo`: the simulated liver4 rig, the closed-loop protocol, a summary against the truth."""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import and_, func, or_, select

from calibration.io.record import chip_documents
from instruments.clock import SharedClock
from instruments.connection import RetryPolicy
from instruments.rig.factory import endpoints_resolver, open_rig
from instruments.rig.model import load_rig
from instruments.sim.rig import SimulatedRig
from instruments.sim.scenario import Scenario, load_scenario
from protocols.run.bench import SimBench
from protocols.run.runner import Runner
from store.engine import make_engine
from store.migrate import upgrade
from store.repositories import fits, proposals, runs
from store.schema import Alarm, Command, DoseEvent, Reading

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RIG = EXAMPLES / "rigs" / "liver4.toml"
SCENARIO = EXAMPLES / "scenarios" / "liver4_truth.toml"
PROTOCOL = EXAMPLES / "protocols" / "closed_loop_liver.toml"
DEFAULT_SEED = 7  # the scenario's own seed: `chiptwin demo` without --seed gives the documented numbers
PERSON_APPROVES = 'policy = "manual"'  # the protocol's last round waits for a person's signed approval
POLICY_APPROVES = 'policy = "auto_within_bounds"'
# The simulated rig's drivers: a device is declared lost after four failed polls (of three attempts), not
# after 8 failures (the third poll), and a lost device is probed again after 2 s of wall time, not 30 s: on
# the stepped clock a failing interlock channel holds the clock (protocols.run.landings), and the
# scenario's 10-minute O2 dropout (clock time) is polled three times at the demo's stops (docs/clock.md).
SIM_RETRY_POLICY = RetryPolicy(failures_until_lost=4 * (RetryPolicy().retries + 1), backoff_max_s=2.0)


def unattended(protocol_text: str) -> str:
    """The protocol with every manual approval made a policy's (inside the same bounds): for a demo
    nobody watches (`chiptwin demo --no-panel`). The run stores this text, so its record says so."""
    return protocol_text.replace(PERSON_APPROVES, POLICY_APPROVES)


def prepare_store(db: str) -> None:
    """The demo's store, created and migrated (the panel refuses a store that does not exist)."""
    engine = make_engine(db, create=True)
    upgrade(engine)
    engine.dispose()


def run_demo(
    db: str,
    clock_rate: float = 3600.0,
    progress: Callable[[int, int, str], None] | None = None,
    protocol_path: Path = PROTOCOL,
    person_approves: bool = False,
    on_alarm: Callable[[str, str, str], None] | None = None,
    seed: int = DEFAULT_SEED,
) -> dict[str, Any]:
    """Run the closed loop on the simulated rig and summarise it. With ``person_approves`` the
    protocol's manual approvals wait for a person (the panel, or `chiptwin proposals approve`);
    without, a policy approves them. ``on_alarm(severity, source, message)`` hears every alarm
    as it is raised (the waiting-for-approval notice among them).

    Reproducible: ``seed`` seeds the rig's sensor noise and the assays, and the rig and runner share
    a ``SharedClock`` (docs/clock.md) that the loop holds (1x) while it computes, so a fit is charged
    its real duration, not ``clock_rate`` times it, on a fast or a busy machine."""
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    text = protocol_path.read_text(encoding="utf-8")
    if not person_approves:
        text = unattended(text)
    engine = make_engine(db, create=True)
    upgrade(engine)
    rig = load_rig(RIG)
    names = {"chips": [c.name for c in rig.chips], "instruments": [i.name for i in rig.instruments]}
    scenario = with_seed(load_scenario(SCENARIO, **names), seed)
    with tempfile.TemporaryDirectory(prefix="chiptwin-demo-clock-") as folder:
        clock = SharedClock.create(Path(folder) / "clock", clock_rate, stepped=True)
        try:
            state, runner = _run(text, rig, scenario, engine, clock, protocol_path, progress, on_alarm, person_approves)
        finally:
            clock.close()
    summary = summarise(engine, runner.run_id, {c: scenario.truth_for(c) for c in names["chips"]})
    summary.update(
        state=state,
        seed=seed,
        clock_rate=clock_rate,
        wall_time_s=time.perf_counter() - wall_start,
        cpu_time_s=time.process_time() - cpu_start,
        db=str(db),
        interlock_trips=[
            {"interlock": str(t.interlock), "channel": t.channel, "latency_wall_s": t.latency_wall_s}
            for t in runner.monitor.trips
        ],
    )
    engine.dispose()
    return summary


def with_seed(scenario: Scenario, seed: int) -> Scenario:
    """The scenario with its noise (sensors, assays) seeded by ``seed``."""
    return dataclasses.replace(scenario, spec=scenario.spec.model_copy(update={"seed": int(seed)}))


def _run(
    text: str,
    rig: Any,
    scenario: Scenario,
    engine: Any,
    clock: SharedClock,
    protocol_path: Path,
    progress: Callable[[int, int, str], None] | None,
    on_alarm: Callable[[str, str, str], None] | None,
    person_approves: bool = False,
) -> tuple[str, Runner]:
    """The simulated rig and the runner on one clock: the run's final state, and its runner. Without
    a person (no panel) a parked run ends the demo, parked, rather than wait for a resume nobody can give."""
    with SimulatedRig(rig, scenario, clock) as sim:
        with open_rig(rig, endpoints_resolver(sim.endpoints_document()), SIM_RETRY_POLICY) as devices:
            runner = Runner.create(
                text, rig, engine, devices, clock, filename=protocol_path.name, bench=SimBench(sim), progress=progress
            )
            runner.control.parked_ends_run = not person_approves
            if on_alarm is not None and runner.ctx.recorder.alarm_hook is None:
                runner.ctx.recorder.alarm_hook = on_alarm
            return runner.run(), runner


def summarise(engine: Any, run_id: int, truth: dict[str, dict[str, float]]) -> dict[str, Any]:
    with engine.connect() as c:
        run_fits = fits.of_run(c, run_id)
        readings = c.execute(select(func.count()).select_from(Reading)).scalar()
        doses = c.execute(select(func.count()).select_from(DoseEvent).where(DoseEvent.run_id == run_id)).scalar()
        confirmed = c.execute(
            select(func.count()).select_from(Command).where(Command.run_id == run_id, Command.state == "confirmed")
        ).scalar()
        started = runs.get(c, run_id).started_utc_s or 0.0
        # the run's own alarms, and its rig's device alarms raised while it ran (they carry no run id)
        alarms = [
            {"severity": a.severity, "source": a.source, "message": a.message, "run_id": a.run_id}
            for a in c.execute(
                select(Alarm)
                .where(or_(Alarm.run_id == run_id, and_(Alarm.run_id.is_(None), Alarm.t_utc_s >= started)))
                .order_by(Alarm.id)
            ).all()
        ]
        decisions = [
            {
                "proposal_id": item.proposal.id,
                "status": item.proposal.status,
                "decided_by": item.approvals[-1].decided_by if item.approvals else None,
                "signed": bool(item.approvals and item.approvals[-1].signature),
                "reason": item.approvals[-1].reason if item.approvals else "",
            }
            for item in reversed(proposals.history(c, run_id))
        ]
    rounds = []
    for k, fit in enumerate(run_fits, 1):
        record = json.loads(fit.record_json)
        chips = {c: doc for c, doc in chip_documents(record).items() if c}
        estimates = {
            chip: {n: {"estimate": v["estimate"], "ci95": v.get("ci95")} for n, v in doc["theta"].items()}
            for chip, doc in chips.items()
        }
        rounds.append(
            {
                "round": k,
                "fit_id": fit.id,
                "estimates": estimates,
                "error": _errors(estimates, truth),
                "ci_width": _widths(estimates),
            }
        )
    return {
        "run_id": run_id,
        "rounds": len(rounds),
        "readings_stored": readings,
        "doses_executed": doses,
        "intents_confirmed": confirmed,
        "alarms": alarms,
        "decisions": decisions,  # each proposal, oldest first: who (a user, or policy:NAME) decided, signed, why
        "per_round": rounds,
        "truth": truth,
    }


def _errors(estimates: dict, truth: dict) -> dict[str, float]:
    """Median over chips of |log(estimate / truth)| per parameter."""
    out: dict[str, list[float]] = {}
    for chip, params in estimates.items():
        for name, value in params.items():
            if name in truth.get(chip, {}) and value["estimate"] > 0:
                import math

                out.setdefault(name, []).append(abs(math.log(value["estimate"] / truth[chip][name])))
    return {n: sorted(v)[len(v) // 2] for n, v in out.items()}


def _widths(estimates: dict) -> dict[str, float | None]:
    """Median over chips of the 95 % interval's relative width (upper/lower ratio); None when not estimable."""
    out: dict[str, list[float]] = {}
    for params in estimates.values():
        for name, value in params.items():
            ci = value.get("ci95")
            ratio = ci[1] / ci[0] if ci and ci[0] and ci[0] > 0 else float("inf")
            out.setdefault(name, []).append(ratio)
    return {n: sorted(v)[len(v) // 2] if sorted(v)[len(v) // 2] != float("inf") else None for n, v in out.items()}
