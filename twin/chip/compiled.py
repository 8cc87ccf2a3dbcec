"""A ``ChipSystem`` built straight from a spec's infix strings.

Used for models without hand-written numerics (``multi_organ``) and as the reference the
hand-written ``liver_chip`` numerics are tested against. Jacobians and parameter
derivatives are by complex step, f'(x) = Im f(x + i·h) / h, which is exact to rounding
(no subtractive cancellation) for the analytic formulas of the catalogue.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from twin.chip.formula import compile_formula
from twin.chip.system import ChipSystem, Medium
from twin.model import ModelSpec

_STEP = 1e-30  # complex-step size: far below rounding, and never cancels


def _columns(names: tuple[str, ...], values: np.ndarray) -> dict[str, np.ndarray]:
    return {name: values[..., i] for i, name in enumerate(names)}


def _complex_step(func: Callable[[np.ndarray], np.ndarray], z: np.ndarray) -> np.ndarray:
    """∂func/∂z for func: (n, m) -> (n, k), batched over n; returns (n, k, m)."""
    n, m = z.shape
    probe = np.repeat(z[:, None, :].astype(complex), m, axis=1)
    probe[:, np.arange(m), np.arange(m)] += 1j * _STEP
    out = func(probe.reshape(n * m, m))
    return np.moveaxis(out.reshape(n, m, -1).imag / _STEP, 1, 2)


def compile_system(spec: ModelSpec, media: Mapping[str, Medium], drug_states: tuple[str, ...]) -> ChipSystem:
    """Numerics of ``spec`` evaluated from its own strings (the contract form)."""
    states, params = spec.state_names, spec.parameter_names
    consts = tuple(c.name for c in spec.constants)
    assignments = [(name, compile_formula(f)) for name, f in spec.assignments.items()]
    odes = [compile_formula(spec.odes[name]) for name in states]
    inits = [compile_formula(s.initial) for s in spec.states]
    observables = {o.name: compile_formula(o.expression) for o in spec.observables}

    def namespace(x: np.ndarray, p: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
        ns = {**_columns(consts, c), **_columns(params, p), **_columns(states, x)}
        for name, formula in assignments:  # in order: each may use those before it
            ns[name] = formula(ns)
        return ns

    def evaluate_all(formulas: list, ns: dict, like: np.ndarray) -> np.ndarray:
        return np.stack([np.broadcast_to(f(ns), like.shape[:1]) for f in formulas], axis=-1)

    def rhs(x: np.ndarray, p: np.ndarray, c: np.ndarray) -> np.ndarray:
        return evaluate_all(odes, namespace(x, p, c), x)

    def jac(x: np.ndarray, p: np.ndarray, c: np.ndarray) -> np.ndarray:
        m = x.shape[1]
        return _complex_step(lambda z: rhs(z, np.repeat(p, m, 0), np.repeat(c, m, 0)), x)

    def dfdp(x: np.ndarray, p: np.ndarray, c: np.ndarray) -> np.ndarray:
        m = p.shape[1]
        return _complex_step(lambda z: rhs(np.repeat(x, m, 0), z, np.repeat(c, m, 0)), p)

    def initial(p: np.ndarray, c: np.ndarray) -> np.ndarray:
        return evaluate_all(inits, {**_columns(consts, c), **_columns(params, p)}, p).real.astype(float)

    def dinitial_dp(p: np.ndarray, c: np.ndarray) -> np.ndarray:
        m = p.shape[1]

        def init_complex(z: np.ndarray) -> np.ndarray:
            cc = np.repeat(c, m, 0)
            return evaluate_all(inits, {**_columns(consts, cc), **_columns(params, z)}, z)

        return _complex_step(init_complex, p)

    def observe(x: np.ndarray, p: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
        ns = namespace(x, p, c)
        return {name: np.broadcast_to(f(ns), x.shape[:1]).copy() for name, f in observables.items()}

    def dobs_dx(x: np.ndarray, p: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
        m = x.shape[1]
        names = list(observables)

        def all_obs(z: np.ndarray) -> np.ndarray:
            values = observe(z, np.repeat(p, m, 0), np.repeat(c, m, 0))
            return np.stack([values[k] for k in names], axis=-1)

        d = _complex_step(all_obs, x)
        return {name: d[:, k, :] for k, name in enumerate(names)}

    return ChipSystem(
        spec=spec,
        media=media,
        rhs=rhs,
        jac=jac,
        dfdp=dfdp,
        initial=initial,
        dinitial_dp=dinitial_dp,
        observe=observe,
        dobs_dx=dobs_dx,
        drug_states=drug_states,
    )
