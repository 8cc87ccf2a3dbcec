"""Experiments run on the twin instead of the chips: lab datasets with known truth.

Used by the design loop's benchmark and tests, and anywhere a "what would this experiment
show" answer is needed. Rows follow the lab-dataset format of ``calibration.io.lab``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from calibration.io.lab import COLUMNS
from twin.chip import Dose, Sample, simulate_chip

CHIP_CONSTANTS = {"v_medium_ml": 1.0, "v_cell_ml": 0.0034, "n_cells_million": 1.0, "kla_per_h": 5.0}


@dataclass(frozen=True)
class Experiment:
    """One dose into fresh medium at t = 0, then medium samples (each sampled volume is removed)."""

    dose_um: float
    sample_times_h: tuple[float, ...]
    sample_volume_ml: float = 0.02
    observables: tuple[str, ...] = ("drug_medium",)
    constants: Mapping[str, float] = field(default_factory=lambda: dict(CHIP_CONSTANTS))

    def dose_nmol(self) -> float:
        return self.dose_um * self.constants["v_medium_ml"]


def lab_rows(
    chip: str,
    experiment: Experiment,
    truth: Mapping[str, float],
    cv: float,
    rng: np.random.Generator,
    time_offset_h: float = 0.0,
) -> list[dict]:
    """Noisy observations (proportional error ``cv``) of one chip under ``experiment``."""
    events = [Dose(0.0, experiment.dose_nmol(), 0.0)]
    events += [Sample(t, experiment.sample_volume_ml) for t in experiment.sample_times_h]
    times = np.asarray(experiment.sample_times_h, dtype=float) - 1e-9  # measured just before removal
    constants = {
        "V_m0": experiment.constants["v_medium_ml"],
        "V_c": experiment.constants["v_cell_ml"],
        "N_cells": experiment.constants["n_cells_million"],
        "kla": experiment.constants["kla_per_h"],
    }
    true = simulate_chip(dict(truth), events, times, constants, list(experiment.observables), method="odeint")
    base = {"chip": chip, **experiment.constants}
    rows = [{**base, "time_h": time_offset_h, "event": "dose", "amount_nmol": experiment.dose_nmol(), "volume_ml": 0.0}]
    for k, t in enumerate(experiment.sample_times_h):
        for name in experiment.observables:
            value = true[name][k] * (1 + cv * rng.standard_normal())
            rows.append(
                {
                    **base,
                    "time_h": time_offset_h + t,
                    "event": "observation",
                    "observable": name,
                    "value": value,
                    "unit": "uM",
                }
            )
        rows.append({**base, "time_h": time_offset_h + t, "event": "sample", "volume_ml": experiment.sample_volume_ml})
    return rows


def write_lab_dataset(rows: Sequence[dict], path: str | Path) -> Path:
    pd.DataFrame(list(rows)).reindex(columns=list(COLUMNS)).to_csv(path, index=False)
    return Path(path)
