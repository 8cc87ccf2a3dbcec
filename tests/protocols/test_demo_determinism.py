"""`chiptwin demo --seed`: the seed reaches the simulated rig's noise and its assays.

(The full two-run comparison under a CPU hog is not here yet: see docs/clock.md, "Not done".)
"""

from __future__ import annotations

import numpy as np

from instruments.rig.model import load_rig
from instruments.sim.scenario import load_scenario
from protocols.demo.setup import DEFAULT_SEED, RIG, SCENARIO, with_seed
from protocols.run.bench import SimBench


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
