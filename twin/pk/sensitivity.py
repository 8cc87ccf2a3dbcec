"""Gradients for calibration: a PINTS-style forward model of a dataset, with sensitivities.

Sensitivities are central differences with a relative step h on each parameter:
∂f/∂θ ≈ [f(θ(1+h)) − f(θ(1−h))] / (2hθ). The truncation error is O(h²) and the rounding
error O(ε_f/h), where ε_f is the relative accuracy of f; with the exact linear solver
(ε_f ≈ 1e-14) the default h = 1e-5 gives about 1e-9 relative accuracy. With the
integrator, ε_f is its rtol, so use rtol ≤ 1e-10 (and expect ~1e-5) or fit on the log scale
with a derivative-free method.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from twin.catalogue import get_model
from twin.dataset import check_dataset_for_model, prepare_dataset
from twin.model import ModelSpec
from twin.pk.params import ParamValue, resolve_parameters
from twin.pk.schedule import build_schedule
from twin.pk.simulate import Engine, predict_resolved

REL_STEP = 1e-5


def central_difference(
    f: Callable[[np.ndarray], np.ndarray], values: Sequence[float], rel_step: float = REL_STEP
) -> np.ndarray:
    """Jacobian ∂f/∂values, shape (len(f(values)), len(values)); values must be non-zero."""
    values = np.asarray(values, dtype=float)
    columns = []
    for i, value in enumerate(values):
        step = rel_step * abs(value)
        up, down = values.copy(), values.copy()
        up[i] += step
        down[i] -= step
        columns.append((np.asarray(f(up)) - np.asarray(f(down))) / (2 * step))
    return np.stack(columns, axis=-1)


class DatasetModel:
    """A dataset and a model with some parameters free: ``simulate(values) -> IPRED per row``.

    ``free`` names the parameters set by ``values`` (in catalogue units, in that order);
    ``fixed`` gives the others as in ``simulate_dataset``. The dosing schedule is built once
    unless a dosing parameter (fN, alagN, rN, dN) is free.
    """

    def __init__(
        self,
        data: pd.DataFrame,
        model: str | ModelSpec,
        free: Sequence[str],
        fixed: Mapping[str, ParamValue] | None = None,
        *,
        observable: str = "cp",
        scale: float = 1.0,
        engine: Engine = "auto",
    ) -> None:
        self.spec = model if isinstance(model, ModelSpec) else get_model(model)
        self.data = prepare_dataset(data)
        check_dataset_for_model(self.data, self.spec)
        self.free = tuple(free)
        self.fixed = dict(fixed or {})
        self.observable, self.scale, self.engine = observable, float(scale), engine
        self._schedule = None
        if not set(self.free) - set(self.spec.parameter_names):
            start = {**self.fixed, **{name: self.spec.parameter(name).default for name in self.free}}
            self._schedule = build_schedule(self.data, resolve_parameters(self.data, self.spec, start))

    def n_parameters(self) -> int:
        return len(self.free)

    def simulate(self, values: Sequence[float]) -> np.ndarray:
        params = {**self.fixed, **dict(zip(self.free, map(float, values), strict=True))}
        resolved = resolve_parameters(self.data, self.spec, params)
        schedule = self._schedule or build_schedule(self.data, resolved)
        return self.scale * predict_resolved(
            self.data, self.spec, resolved, schedule, observable=self.observable, engine=self.engine
        )

    def simulate_s1(self, values: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """IPRED and its sensitivities ∂IPRED/∂values, shape (rows, n_parameters)."""
        return self.simulate(values), central_difference(self.simulate, values)
