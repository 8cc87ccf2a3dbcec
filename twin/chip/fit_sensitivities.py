"""The chip-fit face of the batched sensitivities: many chips, each at its own times.

result = chips_sensitivities(runs, times_by_chip, ["vmax", "km"], ["drug_medium"])
result[i].values["drug_medium"], result[i].d_dlogp["drug_medium"]   # (T_i,), (T_i, 2)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from twin.chip.api import ChipRun, Sensitivities
from twin.chip.batch_sensitivity import observe_sensitivities, solve_batch_sensitivities
from twin.chip.events import validate_schedule
from twin.chip.inputs import constant_vector, observable_names, parameter_vector
from twin.chip.registry import Model, system_for
from twin.chip.solve import Tolerances, check_times
from twin.errors import InvalidValueError


def chips_sensitivities(
    runs: Sequence[ChipRun],
    times_by_chip: Sequence[Sequence[float]],
    free: Sequence[str],
    observables: Sequence[str] | None = None,
    *,
    model: Model = "liver_chip",
    rtol: float = 1e-7,
    atol: float = 1e-10,
    lockstep: Sequence[int] | None = None,
    control_sensitivities: bool = True,
) -> list[Sensitivities]:
    """Each chip's observables at its own (sorted) times and ∂/∂log p for the ``free`` parameters.

    One batched solve for all chips (Rodas4 on the model plus its sensitivity equations).
    ``lockstep``: a group label per run; runs of one group (one chip's schedule at nearby
    parameters) take the same steps, for differences across them (``solve_batch_sensitivities``).
    """
    system = system_for(model)
    names = system.spec.parameter_names
    unknown = [name for name in free if name not in names]
    if unknown:
        raise InvalidValueError(
            f"model {system.spec.name!r} has no parameter {unknown[0]!r}; its parameters are {', '.join(names)}"
        )
    if len(runs) != len(times_by_chip):
        raise InvalidValueError(f"{len(runs)} chips but {len(times_by_chip)} lists of times")
    p = np.array([parameter_vector(system, run.params) for run in runs]).reshape(len(runs), system.n_params)
    c = np.array([constant_vector(system, run.constants) for run in runs]).reshape(len(runs), -1)
    x0 = system.initial(p, c)
    schedules = [validate_schedule(run.events, system, x0[i]) for i, run in enumerate(runs)]
    times = [check_times(t) for t in times_by_chip]
    index = [names.index(name) for name in free]
    states, dstates = solve_batch_sensitivities(
        system, p, c, index, schedules, times, Tolerances(rtol, atol), lockstep, control_sensitivities
    )
    keep = observable_names(system, observables)
    out = []
    for i in range(len(runs)):
        values, grads = observe_sensitivities(system, p[i], c[i], states[i], dstates[i])
        out.append(Sensitivities(times[i], tuple(free), {k: values[k] for k in keep}, {k: grads[k] for k in keep}))
    return out
