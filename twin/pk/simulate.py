"""Simulate a NONMEM-style dataset with a model of the catalogue: IPRED for every row.

``simulate_dataset`` is the entry point for people (paths, units, ``@column`` references);
``predict`` is the one for code that already holds a prepared dataset (calibration).
Linear models are solved exactly and batched over subjects (``twin.pk.linear``); the
non-linear ones, and any subject whose linear system is nearly defective, by the integrator
(``twin.pk.ode``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Mapping

import numpy as np
import pandas as pd

from twin.catalogue import get_model
from twin.dataset import check_dataset_for_model, prepare_dataset, read_dataset
from twin.errors import InvalidValueError
from twin.model import ModelSpec
from twin.pk.linear import simulate_linear
from twin.pk.ode import Integrator, simulate_subject
from twin.pk.params import ParamValue, ResolvedParameters, resolve_parameters
from twin.pk.schedule import Schedule, build_schedule
from twin.pk.systems import observation_weights, rate_matrix

Engine = Literal["auto", "exact", "ode"]
# the integrator used where the exact solver cannot be (nearly equal eigenvalues)
FALLBACK = Integrator(method="LSODA", rtol=1e-10, atol=1e-14)


def simulate_dataset(
    data: pd.DataFrame | str | Path,
    model: str | ModelSpec,
    params: Mapping[str, ParamValue] | None = None,
    *,
    scale: float = 1.0,
    observable: str = "cp",
    engine: Engine = "auto",
    integrator: Integrator | None = None,
) -> pd.DataFrame:
    """The dataset with an ``IPRED`` column: ``scale`` × the model's ``observable`` at each row.

    ``data``: a DataFrame, or the path of a CSV (then the prepared, NONMEM-defaulted frame is
    returned). ``params``: name -> number (catalogue unit), pint Quantity, string such as
    ``"1.1 L/h"``, or ``"@column"`` (see ``twin.pk.params``). ``scale`` multiplies the
    prediction, e.g. 1000 for mg/L -> µg/L. IPRED on a dose row is after that dose is given.
    """
    spec = model if isinstance(model, ModelSpec) else get_model(model)
    frame = read_dataset(data) if isinstance(data, (str, Path)) else data
    prepared = frame if isinstance(data, (str, Path)) else prepare_dataset(frame)
    ipred = predict(prepared, spec, params or {}, observable=observable, engine=engine, integrator=integrator)
    result = frame.copy()
    result["IPRED"] = float(scale) * ipred
    return result


def predict(
    data: pd.DataFrame,
    spec: ModelSpec,
    params: Mapping[str, ParamValue],
    *,
    observable: str = "cp",
    engine: Engine = "auto",
    integrator: Integrator | None = None,
) -> np.ndarray:
    """The observable at every row of a prepared dataset (``twin.dataset.prepare_dataset``)."""
    check_dataset_for_model(data, spec)
    values = resolve_parameters(data, spec, params)
    return predict_resolved(
        data, spec, values, build_schedule(data, values), observable=observable, engine=engine, integrator=integrator
    )


def predict_resolved(
    data: pd.DataFrame,
    spec: ModelSpec,
    values: ResolvedParameters,
    schedule: Schedule,
    *,
    observable: str = "cp",
    engine: Engine = "auto",
    integrator: Integrator | None = None,
) -> np.ndarray:
    """As ``predict``, from already resolved values and schedule (reuse them in a fit)."""
    weights = observation_weights(spec, observable, values.structural)
    exact = spec.linear and engine in ("auto", "exact")
    if engine == "exact" and not spec.linear:
        raise InvalidValueError(f"model {spec.name!r} is not linear; use engine 'auto' or 'ode'")
    if exact:
        out, unsolved = simulate_linear(schedule, rate_matrix(spec.name, values.structural), weights, len(data))
    else:
        out, unsolved = np.full(len(data), np.nan), np.ones(schedule.n_subjects, dtype=bool)
    bounds = schedule.bounds()
    for s in np.flatnonzero(unsolved):
        p = {name: float(v[s]) for name, v in values.structural.items()}
        simulate_subject(
            spec,
            p,
            schedule,
            bounds[s],
            bounds[s + 1],
            weights[s],
            out,
            integrator or (FALLBACK if exact else Integrator()),
        )
    return out
