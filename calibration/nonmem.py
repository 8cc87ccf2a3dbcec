"""NONMEM-style datasets as fitting problems: observations, and a batched predictor.

The dosing schedule is built once; each prediction replaces the subjects' structural
parameters and re-runs the twin's exact (or integrated) solution for all subjects at once.
Observation rows are EVID 0 with MDV 0 and a DV (optionally of one DVID).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from calibration.errors import CalibrationError, NoObservationsError
from calibration.population import PopulationData
from twin.catalogue import get_model
from twin.dataset import check_dataset_for_model, prepare_dataset, subject_index
from twin.model import ModelSpec
from twin.pk.params import ParamValue, resolve_parameters
from twin.pk.schedule import build_schedule
from twin.pk.simulate import predict_resolved


class NonmemProblem:
    """One dataset + one catalogue model: ``predict(φ) -> (n_subjects, n_obs_max)``."""

    def __init__(self, data: pd.DataFrame, model: str | ModelSpec, phi_names: Sequence[str],
                 fixed: Mapping[str, ParamValue] | None = None, *, observable: str = "cp",
                 scale: float = 1.0, dvid: str | None = None) -> None:
        self.spec = model if isinstance(model, ModelSpec) else get_model(model)
        self.data = data if data.index.name in ("line", "row") and "EVID" in data else prepare_dataset(data)
        check_dataset_for_model(self.data, self.spec)
        unknown = [name for name in phi_names if name not in self.spec.parameter_names]
        if unknown:
            raise CalibrationError(f"model {self.spec.name!r} has no parameter {', '.join(unknown)}; "
                                   f"its parameters are {', '.join(self.spec.parameter_names)}")
        self.phi_names, self.observable, self.scale = tuple(phi_names), observable, float(scale)
        self.values = resolve_parameters(self.data, self.spec, fixed or {})
        self.schedule = build_schedule(self.data, self.values)
        self._index_observations(dvid)

    def _index_observations(self, dvid: str | None) -> None:
        data = self.data
        observed = (data["EVID"].to_numpy() == 0) & (data["MDV"].to_numpy() == 0) & data["DV"].notna().to_numpy()
        if dvid is not None and "DVID" in data:
            observed &= data["DVID"].astype(str).to_numpy() == str(dvid)
        if not observed.any():
            raise NoObservationsError("the dataset has no observation rows (EVID 0, MDV 0, with a DV) to fit")
        subjects = subject_index(data)
        self.ids = list(pd.unique(data["ID"]))
        n_subjects = len(self.ids)
        rows = np.flatnonzero(observed)
        counts = np.bincount(subjects[rows], minlength=n_subjects)
        width = int(counts.max())
        self.rows = np.zeros((n_subjects, width), dtype=int)
        self.mask = np.zeros((n_subjects, width), dtype=bool)
        for s in range(n_subjects):
            mine = rows[subjects[rows] == s]
            self.rows[s, : mine.size], self.mask[s, : mine.size] = mine, True
        dv = data["DV"].to_numpy(dtype=float)
        self.dv = np.where(self.mask, dv[self.rows], 0.0)

    def population_data(self) -> PopulationData:
        return PopulationData(self.ids, self.dv, self.mask)

    def predict(self, phi: np.ndarray) -> np.ndarray:
        structural = dict(self.values.structural)
        for k, name in enumerate(self.phi_names):
            structural[name] = np.asarray(phi[:, k], dtype=float)
        values = replace(self.values, structural=structural)
        out = predict_resolved(self.data, self.spec, values, self.schedule, observable=self.observable)
        return self.scale * out[self.rows]
