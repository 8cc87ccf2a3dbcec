"""The numerical face of a chip model: batched right-hand side, Jacobians, observables.

Every function works on a batch of chips at once: states ``x`` are ``(n_chips, n_states)``,
log-free parameters ``p`` are ``(n_chips, n_params)`` and constants ``c`` are
``(n_chips, n_constants)``, all in the canonical chip units (h, nmol, mL, µM, mL/h) and in
the order of the ``ModelSpec``. A single chip is a batch of one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from twin.model import ModelSpec

Array = np.ndarray
Rhs = Callable[[Array, Array, Array], Array]


@dataclass(frozen=True)
class Medium:
    """A well-mixed liquid the rig can dose into, sample from or replace.

    ``amount`` is the drug-amount state (nmol), ``volume`` the volume state (mL); the
    ``solutes`` (amount states, ``amount`` first) are all removed in proportion by a sample
    and all but the drug are emptied by a media change.
    """

    amount: str
    volume: str
    solutes: tuple[str, ...]


@dataclass(frozen=True)
class ChipSystem:
    """A spec plus its batched numerics.

    rhs(x, p, c) -> dx/dt (n, S); jac(x, p, c) -> ∂f/∂x (n, S, S); dfdp(x, p, c) -> ∂f/∂p
    (n, S, P); initial(p, c) -> x(0) (n, S); dinitial_dp(p, c) -> ∂x(0)/∂p (n, S, P);
    observe(x, p, c) -> {name: (n,)}; dobs_dx(x, p, c) -> {name: (n, S)}.
    ``drug_states`` are the amount states whose sum, plus what events removed, must equal
    the drug put in (the mass balance).
    """

    spec: ModelSpec
    media: Mapping[str, Medium]
    rhs: Rhs
    jac: Callable[[Array, Array, Array], Array]
    dfdp: Callable[[Array, Array, Array], Array]
    initial: Callable[[Array, Array], Array]
    dinitial_dp: Callable[[Array, Array], Array]
    observe: Callable[[Array, Array, Array], dict[str, Array]]
    dobs_dx: Callable[[Array, Array, Array], dict[str, Array]]
    drug_states: tuple[str, ...] = field(default=())
    # Optional one-chip right-hand side on a 1-D state (plain floats): no batch overhead per
    # call, for the odeint fast path; must equal rhs(x[None], p[None], c[None])[0].
    rhs_one: Callable[[Array, Array, Array], Array] | None = None

    @property
    def state_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.spec.state_names)}

    @property
    def constant_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.spec.constants)

    @property
    def n_states(self) -> int:
        return len(self.spec.states)

    @property
    def n_params(self) -> int:
        return len(self.spec.parameters)
