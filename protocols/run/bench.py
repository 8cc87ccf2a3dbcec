"""The bench: what people (or a liquid handler) do that no instrument driver does.

On a real rig a technician takes offline samples and changes media; the assay results
arrive later through the assay inbox. ``SimBench`` does both on the simulated rig: a
sample returns the chip's true concentrations with the assay's noise (proportional CV,
seeded from the scenario), due ``scenario.assay_delay_h`` after sampling; a media change
replaces the simulated chip's medium. Without a bench the runner records samples and
media changes as requests to people and fits only what has been imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

ASSAY_CV = 0.10  # LC-MS: 10 % proportional error (the scenario file has no assay noise key yet)
ANALYTES = {"drug_medium_um": "drug_medium", "metabolite_medium_um": "metabolite_medium"}


@dataclass(frozen=True)
class AssayOutcome:
    due_utc_s: float
    values_um: dict[str, float]  # analyte -> measured concentration


class Bench(Protocol):
    def sample(self, chip: str, volume_ml: float) -> AssayOutcome | None: ...

    def media_change(self, chip: str, volume_ml: float, concentration_um: float) -> bool: ...


class SimBench:
    def __init__(self, sim: Any, cv: float = ASSAY_CV) -> None:
        self.sim, self.cv = sim, cv
        self._rng = np.random.default_rng(int(sim.scenario.seed) + 101)

    def sample(self, chip: str, volume_ml: float) -> AssayOutcome:
        taken = self.sim.sample(chip, volume_ml)
        values = {
            name: float(max(taken[key], 0.0) * np.exp(self.cv * self._rng.standard_normal()))
            for key, name in ANALYTES.items()
        }
        due = self.sim.start_s + float(taken["available_at_s"])
        return AssayOutcome(due, values)

    def media_change(self, chip: str, volume_ml: float, concentration_um: float) -> bool:
        self.sim.media_change(chip, volume_ml, concentration_um)
        return True
