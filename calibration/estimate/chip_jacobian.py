"""Predictions of chip observations and their Jacobian ∂f/∂log θ from one batched sensitivity run.

The ``predict_jacobian`` of a chip problem (``IndividualProblem``): for several parameter
sets at once (a fit's trial point, or the 2·n perturbed points of a covariance step), every
chip of every set goes into one batched Rodas4 run of the model and its forward
sensitivities (``twin.chip.fit_sensitivities``), each chip at its own observation times.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from calibration.io.lab import ChipData
from twin.chip import ChipRun, simulate_chips
from twin.chip.fit_sensitivities import chips_sensitivities
from twin.errors import TwinError

# Fit iterations: predictions within ~1e-5 relative of the tight solution (measurement noise is
# ~10 %). The covariance step (``tight=True``) differences gradients: its copies of each chip step in
# lockstep, so the differences see one smooth integration error; at rtol 1e-5 the 4-chip benchmark's
# standard errors are within 3e-6 (relative) of rtol 1e-9's (docs/fit-engines.md).
# The step size is controlled on the states alone (as CVODES' default, errconS off): the sensitivities
# ride on the states' steps, 74 instead of 96 steps on the 4-chip benchmark, their error 2e-6 of the
# largest (4e-7 when controlled), standard errors within 6e-6 of rtol 1e-8's.
RTOL, ATOL = 1e-5, 1e-8
TIGHT_RTOL, TIGHT_ATOL = 1e-5, 1e-8
CONTROL_SENSITIVITIES = False


class ChipsJacobian:
    """``(parameter sets) -> [(f, ∂f/∂log θ_names)]`` over all observations of ``chips``, in chip order."""

    def __init__(
        self, chips: Sequence[ChipData], model: str, names: Sequence[str], *, rtol: float = RTOL, atol: float = ATOL
    ) -> None:
        self.chips, self.model, self.names = list(chips), model, tuple(names)
        self.rtol, self.atol = rtol, atol
        self.times, self.index, self.rows = [], [], []
        for chip in self.chips:
            times, index = np.unique(np.asarray(chip.times_h, dtype=float), return_inverse=True)
            self.times.append(times)
            self.index.append(index)
            self.rows.append(
                {name: np.asarray([o == name for o in chip.observables]) for name in set(chip.observables)}
            )
        self.observables = sorted({o for chip in self.chips for o in chip.observables})
        self.all_times, self.where = np.unique(np.concatenate(self.times), return_inverse=True)
        self.n_observations = sum(chip.n_observations for chip in self.chips)
        self.solves = 0

    def __call__(
        self, parameter_sets: Sequence[Mapping[str, float]], tight: bool = False
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        rtol, atol = (TIGHT_RTOL, TIGHT_ATOL) if tight else (self.rtol, self.atol)
        runs = [ChipRun(dict(values), chip.events, chip.constants) for values in parameter_sets for chip in self.chips]
        self.solves += 1
        try:
            results = chips_sensitivities(
                runs,
                self.times * len(parameter_sets),
                self.names,
                self.observables,
                model=self.model,
                rtol=rtol,
                atol=atol,
                lockstep=list(range(len(self.chips))) * len(parameter_sets) if tight else None,
                control_sensitivities=CONTROL_SENSITIVITIES,
            )
        except (TwinError, np.linalg.LinAlgError, FloatingPointError):
            nan = (np.full(self.n_observations, np.nan), np.full((self.n_observations, len(self.names)), np.nan))
            return [nan for _ in parameter_sets]  # the trial point is rejected, not the fit
        out = []
        for k in range(len(parameter_sets)):
            parts = [self._observed(i, results[k * len(self.chips) + i]) for i in range(len(self.chips))]
            out.append((np.concatenate([f for f, _ in parts]), np.concatenate([j for _, j in parts])))
        return out

    def each(
        self, values_by_chip: Sequence[Mapping[str, float]], chips: Sequence[int]
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """``(f, ∂f/∂log θ)`` of chip ``chips[k]`` at its own parameters ``values_by_chip[k]``, all in one
        batched run (a population fit: every chip at its own individual parameters)."""
        runs = [ChipRun(dict(v), self.chips[i].events, self.chips[i].constants) for v, i in zip(values_by_chip, chips)]
        self.solves += 1
        try:
            results = chips_sensitivities(
                runs,
                [self.times[i] for i in chips],
                self.names,
                self.observables,
                model=self.model,
                rtol=self.rtol,
                atol=self.atol,
                control_sensitivities=CONTROL_SENSITIVITIES,
            )
        except (TwinError, np.linalg.LinAlgError, FloatingPointError):
            return [
                (
                    np.full(self.chips[i].n_observations, np.nan),
                    np.full((self.chips[i].n_observations, len(self.names)), np.nan),
                )
                for i in chips
            ]
        return [self._observed(i, result) for i, result in zip(chips, results)]

    def _observed(self, i: int, result) -> tuple[np.ndarray, np.ndarray]:
        """Chip ``i``'s predictions and Jacobian at its observations, from its sensitivity result."""
        chip = self.chips[i]
        f = np.empty(chip.n_observations)
        jac = np.empty((chip.n_observations, len(self.names)))
        for name, rows in self.rows[i].items():
            f[rows] = result.values[name][self.index[i][rows]]
            jac[rows] = result.d_dlogp[name][self.index[i][rows]]
        return f, jac

    def predict(self, values: Mapping[str, float]) -> np.ndarray:
        """Predictions alone (no sensitivities): the batched Rodas4 of ``simulate_chips``, all chips at
        the union of their times; for probes that need no Jacobian (the geodesic acceleration)."""
        return self.predict_sets([values])[0]

    def predict_sets(self, parameter_sets: Sequence[Mapping[str, float]]) -> list[np.ndarray]:
        """``predict`` for several parameter sets in one batched run."""
        return ChipsJacobian.joint([(self, values) for values in parameter_sets], jacobian=False)

    @staticmethod
    def joint(
        requests: Sequence[tuple["ChipsJacobian", Mapping[str, float]]], jacobian: bool = True, tight: bool = False
    ) -> list:
        """Several problems' parameter sets (problems of one model and one set of estimated names, e.g.
        chips fitted each alone) in one batched run: ``[(f, ∂f/∂log θ)]``, or ``[f]`` without the
        Jacobian (a plain run at the union of all times); ``tight`` as in ``__call__``."""
        first = requests[0][0]
        rtol, atol = (TIGHT_RTOL, TIGHT_ATOL) if tight else (first.rtol, first.atol)
        runs = [ChipRun(dict(values), chip.events, chip.constants) for pj, values in requests for chip in pj.chips]
        observables = sorted({o for pj, _ in requests for o in pj.observables})
        try:
            if jacobian:
                first.solves += 1
                results = chips_sensitivities(
                    runs,
                    [t for pj, _ in requests for t in pj.times],
                    first.names,
                    observables,
                    model=first.model,
                    rtol=rtol,
                    atol=atol,
                    lockstep=[id(pj.chips[i]) for pj, _ in requests for i in range(len(pj.chips))] if tight else None,
                    control_sensitivities=CONTROL_SENSITIVITIES,
                )
            else:
                all_times = np.unique(np.concatenate([pj.all_times for pj, _ in requests]))
                out = simulate_chips(runs, all_times, observables, model=first.model, rtol=rtol, atol=atol)
        except (TwinError, np.linalg.LinAlgError, FloatingPointError):
            n, p = (pj.n_observations for pj, _ in requests), len(first.names)
            return [(np.full(k, np.nan), np.full((k, p), np.nan)) if jacobian else np.full(k, np.nan) for k in n]
        answers, row = [], 0
        for pj, _ in requests:
            if jacobian:
                parts = [pj._observed(i, results[row + i]) for i in range(len(pj.chips))]
                answers.append((np.concatenate([f for f, _ in parts]), np.concatenate([j for _, j in parts])))
            else:
                answers.append(pj._plain(out, row, all_times))
            row += len(pj.chips)
        return answers

    def _plain(self, out: Mapping[str, np.ndarray], first: int, all_times: np.ndarray) -> np.ndarray:
        """One parameter set's predictions at every observation, from a plain run at ``all_times`` whose
        rows first, first + 1, … are this problem's chips."""
        parts = []
        for i, chip in enumerate(self.chips):
            columns = np.searchsorted(all_times, self.times[i])
            f = np.empty(chip.n_observations)
            for name, rows in self.rows[i].items():
                f[rows] = out[name][first + i, columns[self.index[i][rows]]]
            parts.append(f)
        return np.concatenate(parts)
