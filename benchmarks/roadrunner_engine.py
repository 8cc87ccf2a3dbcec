"""libroadrunner as an extra engine of ``benchmarks.bench_pk``: the exported SBML, one subject at a time.

Each model's SBML (``twin.sbml.export_sbml``) is loaded and JIT-compiled once, before timing
(shared work, like our own import); per subject the engine sets the parameters, resets the
states, and integrates dose to dose with CVODE, adding each bolus to the dosed state between
``simulate`` calls — the usual way to give NONMEM-style doses to an SBML model. Doses come
from the dataset's dose records (AMT, CMT, II, ADDL); parameters from its ``@column``s.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from twin.catalogue import get_model
from twin.sbml import export_sbml

TOLERANCES = {"relative_tolerance": 1e-10, "absolute_tolerance": 1e-12}
NAME = "libroadrunner CVODE loop (exported SBML, rtol 1e-10)"


def load(model: str):
    import roadrunner

    rr = roadrunner.RoadRunner(export_sbml(model))
    integrator = rr.getIntegrator()
    for key, value in TOLERANCES.items():
        integrator.setValue(key, value)
    return rr


def _doses(rows: pd.DataFrame, states: tuple[str, ...]) -> list[tuple[float, str, float]]:
    doses = []
    for record in rows[rows["EVID"] == 1].itertuples():
        for k in range(int(getattr(record, "ADDL", 0)) + 1):
            doses.append((record.TIME + k * getattr(record, "II", 0.0), states[int(record.CMT) - 1], record.AMT))
    return sorted(doses)


def _subject(rr, rows: pd.DataFrame, states: tuple[str, ...], observable: str) -> np.ndarray:
    times = rows["TIME"].to_numpy()
    observed = rows["EVID"].to_numpy() == 0
    doses = _doses(rows, states)
    edges = sorted({0.0, *(t for t, _, _ in doses), float(times.max())})
    values: dict[float, float] = {}
    for start, stop in zip(edges[:-1], edges[1:]):
        for t, state, amount in doses:
            if t == start:
                rr.setValue(state, rr[state] + amount)
        values[start] = rr[observable]
        inside = np.unique(times[observed & (times > start) & (times < stop)])
        result = rr.simulate(times=[start, *inside, stop], selections=[observable])
        values.update(zip(inside, result[observable][1:-1]))
    for t, state, amount in doses:
        if t == edges[-1]:
            rr.setValue(state, rr[state] + amount)
    values[edges[-1]] = rr[observable]
    return np.array([values.get(t, np.nan) if o else np.nan for t, o in zip(times, observed)])


class RoadRunnerEngine:
    """An ``Engine`` of bench_pk: (data, model, params) -> the observable at every row (NaN on dose rows)."""

    def __init__(self, models: tuple[str, ...], observable: str = "cp") -> None:
        self.runners = {model: load(model) for model in models}  # compiled before any timing
        self.observable = observable

    def __call__(self, data: pd.DataFrame, model: str, params: Mapping[str, object]) -> np.ndarray:
        rr, states = self.runners[model], get_model(model).state_names
        data = data.reset_index(drop=True)
        out = np.full(len(data), np.nan)
        for _, rows in data.groupby("ID", sort=False):
            rr.reset()  # states back to their initial values; parameters are set just below
            for name, value in params.items():
                column = str(value)[1:] if str(value).startswith("@") else None
                rr.setValue(name, float(rows[column].iloc[0]) if column else float(value))
            out[rows.index] = _subject(rr, rows, states, self.observable)
        return out


def engines(models: tuple[str, ...]) -> dict[str, RoadRunnerEngine]:
    """``{name: engine}`` for ``bench_pk.run(extra_engines=...)``; empty when libroadrunner is missing."""
    try:
        import roadrunner  # noqa: F401
    except ImportError:
        return {}
    return {NAME: RoadRunnerEngine(models)}
