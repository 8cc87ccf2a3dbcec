"""The runner holds a shared clock while it computes: a calibrate step is charged its real duration.

A real simulated rig (ptys, Modbus TCP on 127.0.0.1) and a real SQLite store run a small
closed loop on a ``SharedClock`` at 36000x; the fit is made slow on purpose (a known real
duration), and the simulated time the step took is compared with that duration.
"""

from __future__ import annotations

import time

import pytest

from instruments.clock import SharedClock
from instruments.rig.factory import endpoints_resolver, open_rig
from instruments.rig.model import load_rig
from instruments.sim.rig import SimulatedRig
from instruments.sim.scenario import load_scenario
from protocols.loop import decide
from protocols.run.bench import SimBench
from protocols.run.runner import Runner
from store.engine import make_engine
from store.migrate import upgrade
from tests.protocols.runner_helpers import RIG, dose_sample_calibrate, protocol_text

RATE = 36000.0
FIT_WALL_S = 0.5  # the compute step's known real duration

STEPS = dose_sample_calibrate(["0.5 h", "1 h"], ["vmax"])


@pytest.fixture
def slow_fit(monkeypatch):
    """The loop's fit, made FIT_WALL_S of wall time longer; records whether the clock was held."""
    seen: list[tuple[bool, float]] = []  # (held, simulated seconds the known real duration took)
    real = decide.calibrate

    def slow(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        before = CLOCK[0].now_s()
        time.sleep(FIT_WALL_S)
        seen.append((CLOCK[0].is_held, CLOCK[0].now_s() - before))
        return real(*args, **kwargs)

    monkeypatch.setattr(decide, "calibrate", slow)  # the loop steps look it up there at each call
    return seen


CLOCK: list[SharedClock] = []


def test_calibrate_advances_simulated_time_by_its_real_duration(tmp_path, slow_fit):
    engine = make_engine(str(tmp_path / "lab.db"), create=True)
    upgrade(engine)
    rig = load_rig(RIG)
    (tmp_path / "scenario.toml").write_text("seed = 3\n")
    names = {"chips": [c.name for c in rig.chips], "instruments": [i.name for i in rig.instruments]}
    clock = SharedClock.create(tmp_path / "clock", RATE)
    CLOCK[:] = [clock]
    try:
        with SimulatedRig(rig, load_scenario(tmp_path / "scenario.toml", **names), clock) as sim:
            with open_rig(rig, endpoints_resolver(sim.endpoints_document())) as devices:
                runner = Runner.create(protocol_text(STEPS), rig, engine, devices, clock, bench=SimBench(sim))
                wall_before = time.perf_counter()
                state = runner.run()
                wall_s = time.perf_counter() - wall_before
                released = not clock.is_held
    finally:
        engine.dispose()
        clock.close()
    assert state == "done"
    [(held, took_s)] = slow_fit  # the fit ran once
    assert held, "the runner holds the clock while it fits"
    assert FIT_WALL_S <= took_s < 0.25 * FIT_WALL_S * RATE, f"{took_s:.0f} s: charged at the rate, not held"
    assert released, "the hold ends with the step"
    assert wall_s < 600
