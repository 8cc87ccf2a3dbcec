"""Every catalogue model, exported to SBML and run by libroadrunner, matches the project's own solution.

Dosing is not in the SBML (see ``twin.sbml``): here it is applied the way any SBML user
would apply it — integrate to the event time, change the state in roadrunner
(``rr[state] = ...``), integrate on. CVODE runs at absolute/relative tolerance 1e-12; the
project's chip integrator at rtol 1e-10. Agreement: ≤ 1e-6 relative, values below 1e-6 of
the observable's peak judged against that floor instead (they pass through zero).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd
import pytest

from twin.catalogue import all_models
from twin.chip import Dose, MediaChange, Sample, simulate_chip
from twin.chip.registry import system_for
from twin.pk import simulate_dataset
from twin.pk.models import MODELS as PK_MODELS
from twin.sbml import export_sbml
from twin.units import Q_

roadrunner = pytest.importorskip("roadrunner")

RTOL = 1e-6
FLOOR = 1e-6  # × the observable's peak
PK_TIMES = (0.25, 1.0, 3.0, 6.0, 8.0, 8.5, 12.0, 24.0, 48.0)
PK_DOSES = ((0.0, 100.0), (8.0, 50.0))  # (time h, amount mg): the second dose lands on an observation
CHIP_TIMES = (0.25, 1.0, 2.0, 3.0, 6.0, 12.0, 24.0, 26.0, 30.0, 36.0, 48.0)

Action = Callable[[object], None]


def _is_chip(name: str) -> bool:
    """Everything that is not a classical PK model is simulated by the chip simulator."""
    return name not in {spec.name for spec in PK_MODELS}


def runner(name: str):
    rr = roadrunner.RoadRunner(export_sbml(name))
    integrator = rr.getIntegrator()
    integrator.setValue("relative_tolerance", 1e-12)
    integrator.setValue("absolute_tolerance", 1e-12)
    integrator.setValue("maximum_num_steps", 100_000)
    return rr


def run_segments(rr, events: Sequence[tuple[float, Action]], times: Sequence[float], names: Sequence[str]) -> dict:
    """Observables at ``times``, right-continuous: an event at t acts before the output at t."""
    out = {name: [] for name in names}
    boundaries = sorted({0.0, *(t for t, _ in events), max(times)})
    record = set(times)
    for start, stop in zip(boundaries[:-1], boundaries[1:]):
        for t, action in events:
            if t == start:
                action(rr)
        if start in record:
            for name in names:
                out[name].append(rr[name])
        inside = [t for t in times if start < t < stop]
        result = rr.simulate(times=[start, *inside, stop], selections=list(names))
        for name in names:
            out[name].extend(result[name][1:-1] if inside else [])
    for t, action in events:  # events at the very last time, then the output there
        if t == boundaries[-1]:
            action(rr)
    for name in names:
        out[name].append(rr[name])
    return {name: np.array(values) for name, values in out.items()}


def relative_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    scale = np.maximum(np.abs(ours), FLOOR * np.abs(ours).max())
    return float(np.max(np.abs(theirs - ours) / np.where(scale > 0, scale, 1.0)))


# ---------------------------------------------------------------- classical PK


def _amount_states(name: str) -> list[int]:
    spec = all_models()[name]
    return [i for i, s in enumerate(spec.states) if Q_(1.0, s.unit).check("[mass]")]


def pk_dataset(cmt: int) -> pd.DataFrame:
    doses = [{"ID": 1, "TIME": t, "EVID": 1, "CMT": cmt, "AMT": a} for t, a in PK_DOSES]
    observations = [{"ID": 1, "TIME": t, "EVID": 0, "CMT": cmt, "AMT": 0.0} for t in PK_TIMES]
    return (
        pd.DataFrame(doses + observations)
        .sort_values(["TIME", "EVID"], ascending=[True, False], kind="stable")
        .reset_index(drop=True)
    )


PK_CASES = [(name, i) for name, spec in all_models().items() if not _is_chip(name) for i in _amount_states(name)]


@pytest.mark.parametrize(("model", "state"), PK_CASES, ids=[f"{m}-cmt{i + 1}" for m, i in PK_CASES])
def test_pk_model_matches_roadrunner(model: str, state: int) -> None:
    spec = all_models()[model]
    data = pk_dataset(state + 1)
    observed = (data["EVID"] == 0).to_numpy()
    rr = runner(model)
    target = spec.state_names[state]

    def dose(amount: float) -> Action:
        return lambda r: r.setValue(target, r[target] + amount)

    names = [o.name for o in spec.observables]
    theirs = run_segments(rr, [(t, dose(a)) for t, a in PK_DOSES], PK_TIMES, names)
    for observable in names:
        ours = simulate_dataset(data, spec, observable=observable)["IPRED"].to_numpy()[observed]
        assert np.abs(ours).max() > 0
        assert relative_error(ours, theirs[observable]) <= RTOL, observable


# ---------------------------------------------------------------- organ chips


def chip_events(name: str) -> list:
    """Doses, samples and media changes on every medium of the chip."""
    media = system_for(name).media
    main = next(iter(media))
    events = [
        Dose(0.0, 50.0, 0.1, medium=main),
        Sample(2.0, 0.1, medium=main),
        Dose(6.0, 20.0, medium=main),
        MediaChange(24.0, 1.0, 5.0, medium=main),
        Sample(30.0, 0.2, medium=main),
    ]
    for other in list(media)[1:]:
        events += [Dose(1.0, 30.0, 0.05, medium=other), Sample(12.0, 0.05, medium=other)]
    return sorted(events, key=lambda e: e.time_h)


def roadrunner_action(event, medium) -> Action:
    """The event as MODELS.md states it, applied to roadrunner's state."""

    def act(rr) -> None:
        if isinstance(event, Dose):
            rr.setValue(medium.amount, rr[medium.amount] + event.amount_nmol)
            rr.setValue(medium.volume, rr[medium.volume] + event.volume_ml)
        elif isinstance(event, Sample):
            kept = 1.0 - event.volume_ml / rr[medium.volume]
            for solute in medium.solutes:
                rr.setValue(solute, rr[solute] * kept)
            rr.setValue(medium.volume, rr[medium.volume] - event.volume_ml)
        else:
            for solute in medium.solutes:
                rr.setValue(solute, 0.0)
            rr.setValue(medium.amount, event.concentration_um * event.volume_ml)
            rr.setValue(medium.volume, event.volume_ml)

    return act


CHIP_MODELS = [name for name in all_models() if _is_chip(name)]


@pytest.mark.parametrize("model", CHIP_MODELS)
def test_chip_model_matches_roadrunner(model: str) -> None:
    spec = all_models()[model]
    media = system_for(model).media
    events = chip_events(model)
    ours = simulate_chip(None, events, CHIP_TIMES, model=model, rtol=1e-10, atol=1e-12, method="Radau")
    rr = runner(model)
    names = [o.name for o in spec.observables]
    theirs = run_segments(rr, [(e.time_h, roadrunner_action(e, media[e.medium])) for e in events], CHIP_TIMES, names)
    errors = {name: relative_error(ours[name], theirs[name]) for name in names}
    assert all(np.abs(ours[name]).max() > 0 for name in names if name.startswith("drug"))
    assert max(errors.values()) <= RTOL, errors
