"""`chiptwin demo`'s loop is reproducible: the same seed gives the same doses, sample times and
estimates on a quiet machine and on one whose cores are both kept busy by other processes.

The demo's own machinery (``protocols.demo.setup.run_demo``: the simulated liver4 rig and the
runner on one *stepped* ``SharedClock``, docs/clock.md) runs a short closed loop twice — a hold on
oxygen, a dose, samples, a fit, a proposal the policy approves and executes, a second fit — the
second time beside two processes spinning on the CPU. Estimates must agree to 3 significant
digits; doses exactly in amount; sample and dose times to the second before any compute step and
within the compute time charged (1x, its real duration) after one.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from sqlalchemy import select

from instruments.rig.model import load_rig
from instruments.sim.scenario import load_scenario
from protocols.demo.setup import DEFAULT_SEED, RIG, SCENARIO, run_demo, with_seed
from protocols.run.bench import SimBench
from store.engine import make_engine
from store.repositories import runs
from store.schema import DoseEvent, Sample
from tests.protocols.runner_helpers import dose_sample_calibrate, propose_approve_execute, protocol_text, step

RATE = 36000.0
COMPUTE_CHARGE_MAX_S = 600.0  # clock seconds two runs' held compute steps may differ by (wall seconds at 1x)

# the demo's protocol, one round on two chips (two of the rig's four: half the fitting): the same
# steps, kinds and policies as examples/protocols/closed_loop_liver.toml
SHORT_LOOP = protocol_text(
    step("perfuse", flow="5 uL/min", duration="0.5 h")
    + step("hold_until", condition="oxygen > 60 % for 10 min", timeout="1 h", on_timeout="abort")
    + dose_sample_calibrate(["0.5 h", "2 h", "6 h"], ["vmax", "km"])
    + propose_approve_execute(["5 uM", "20 uM", "50 uM"], [["0.5 h", "2 h", "8 h"]], objective="information_gain")
    + step("calibrate", model="liver_chip", parameters=["vmax", "km"]),
    '"oxygen < 20 % for 30 min -> safe_state, alarm"',
    name="closed-loop liver, one round",
)


def _record(db: str, summary: dict) -> dict:
    """What must repeat: estimates per round, doses and samples (clock seconds since the run started)."""
    engine = make_engine(db)
    try:
        with engine.connect() as c:
            t0 = runs.get(c, summary["run_id"]).started_utc_s
            doses = [
                (d.chip_id, d.t_utc_s - t0, d.amount_nmol) for d in c.execute(select(DoseEvent).order_by(DoseEvent.id))
            ]
            samples = [(s.label, s.t_utc_s - t0) for s in c.execute(select(Sample).order_by(Sample.id))]
    finally:
        engine.dispose()
    estimates = {
        (r["round"], chip, name): value["estimate"]
        for r in summary["per_round"]
        for chip, params in r["estimates"].items()
        for name, value in params.items()
    }
    return {"estimates": estimates, "doses": doses, "samples": samples, "state": summary["state"]}


def _run(tmp_path, name: str) -> dict:
    protocol = tmp_path / "loop.toml"
    protocol.write_text(SHORT_LOOP)
    db = str(tmp_path / f"{name}.db")
    return _record(db, run_demo(db, RATE, protocol_path=protocol, seed=DEFAULT_SEED))


def _same_to_3_digits(a: float, b: float) -> bool:
    """Within half a unit of the third significant digit (values either side of a rounding edge agree)."""
    return math.isclose(a, b, rel_tol=5e-4, abs_tol=1e-12)


@pytest.mark.timeout(600)
def test_the_same_seed_gives_the_same_loop_on_a_quiet_and_a_busy_machine(tmp_path):
    quiet = _run(tmp_path, "quiet")
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        busy = _run(tmp_path, "busy")
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait(timeout=10)
    assert quiet["state"] == busy["state"] == "done"
    assert quiet["estimates"].keys() == busy["estimates"].keys() and len({k[0] for k in quiet["estimates"]}) == 2
    differ = {
        k: (v, busy["estimates"][k])
        for k, v in quiet["estimates"].items()
        if not _same_to_3_digits(v, busy["estimates"][k])
    }
    assert not differ, f"estimates differ beyond 3 significant digits: {differ}"

    assert [d[0] for d in quiet["doses"]] == [d[0] for d in busy["doses"]] and len(quiet["doses"]) == 4
    assert np.allclose([d[2] for d in quiet["doses"]], [d[2] for d in busy["doses"]], rtol=1e-9)
    assert [s[0] for s in quiet["samples"]] == [s[0] for s in busy["samples"]] and len(quiet["samples"]) == 12
    first = 6  # the first dose's samples: before any compute step, so only the crawl at 1x between landings
    lag = [abs(a[1] - b[1]) for a, b in zip(quiet["samples"], busy["samples"])]
    assert max(lag[:first]) < 5.0, f"sample times before the first fit differ by {max(lag[:first]):.1f} s"
    assert max(lag) < COMPUTE_CHARGE_MAX_S, f"sample times differ by {max(lag):.0f} s"
    dose_lag = [abs(a[1] - b[1]) for a, b in zip(quiet["doses"], busy["doses"])]
    assert max(dose_lag[:2]) < 5.0 and max(dose_lag) < COMPUTE_CHARGE_MAX_S, dose_lag


def _scenario():
    rig = load_rig(RIG)
    names = {"chips": [c.name for c in rig.chips], "instruments": [i.name for i in rig.instruments]}
    return load_scenario(SCENARIO, **names)


class _Sim:
    """The two things SimBench reads of a simulated rig: its scenario, and a sample's truth."""

    def __init__(self, scenario) -> None:  # noqa: ANN001
        self.scenario, self.start_s = scenario, 0.0

    def sample(self, chip: str, volume_ml: float) -> dict[str, float]:
        return {"drug_medium_um": 10.0, "metabolite_medium_um": 2.0, "available_at_s": 3600.0}


def _assays(seed: int) -> list[float]:
    bench = SimBench(_Sim(with_seed(_scenario(), seed)))
    return [v for _ in range(5) for v in bench.sample("chip1", 0.02).values_um.values()]


def test_the_seed_replaces_the_scenarios_and_nothing_else():
    scenario = _scenario()
    seeded = with_seed(scenario, 11)
    assert seeded.seed == 11 and scenario.seed == DEFAULT_SEED
    assert seeded.truth_for("chip1") == scenario.truth_for("chip1")


def test_the_same_seed_gives_the_same_assays_and_another_seed_others():
    assert _assays(7) == _assays(7)
    assert not np.allclose(_assays(7), _assays(8))
