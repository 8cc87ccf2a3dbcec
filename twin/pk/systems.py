"""The numerical form of each PK model: rate matrices, right-hand sides, Jacobians, outputs.

These are the fast twins of the SBML-infix equations in ``twin.pk.models``; a test
evaluates both at random points and requires them equal. Parameters are arrays (one value
per subject) for the batched linear solver, or floats for the per-subject integrator.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from twin.errors import InvalidValueError
from twin.model import ModelSpec

Params = Mapping[str, np.ndarray]
Rhs = Callable[[float, np.ndarray, np.ndarray], np.ndarray]  # (t, x, infusion rates) -> dx/dt


def rate_matrix(name: str, p: Params) -> np.ndarray:
    """A such that dx/dt = A·x + infusion rates, shape (subjects, n, n); linear models only."""
    oral = name.startswith("oral_")
    if name in ("iv_1cpt", "oral_1cpt"):
        central = [(-(p["cl"] / p["v"]), 0, 0)]
    elif name in ("iv_2cpt", "oral_2cpt"):
        k10, k12, k21 = p["cl"] / p["v1"], p["q"] / p["v1"], p["q"] / p["v2"]
        central = [(-(k10 + k12), 0, 0), (k21, 0, 1), (k12, 1, 0), (-k21, 1, 1)]
    else:
        raise InvalidValueError(f"model {name!r} is not linear; it has no rate matrix")
    n_central = 1 if name.endswith("1cpt") else 2
    n = n_central + oral
    a = np.zeros((len(next(iter(p.values()))), n, n))
    for value, i, j in central:  # the disposition block sits after the depot, if any
        a[:, i + oral, j + oral] = value
    if oral:
        a[:, 0, 0] = -p["ka"]
        a[:, 1, 0] = p["ka"]
    return a


def observation_weights(spec: ModelSpec, observable: str, p: Params) -> np.ndarray:
    """c such that the observable = c·x, shape (subjects, n): every observable here is linear."""
    names = spec.state_names
    n_subjects = len(next(iter(p.values())))
    c = np.zeros((n_subjects, len(names)))
    if observable == "cp":
        volume = p["v1"] if "v1" in p else p["v"]
        c[:, names.index("central")] = 1.0 / volume
    elif observable == "pca" and "effect" in names:
        c[:, names.index("effect")] = 1.0
    else:
        known = ", ".join(o.name for o in spec.observables)
        raise InvalidValueError(f"model {spec.name!r} has no observable {observable!r}; choose one of: {known}")
    return c


def initial_state(spec: ModelSpec, p: Mapping[str, float]) -> np.ndarray:
    """State after a reset (and at the start): all amounts 0; the PD effect at its baseline."""
    return np.array([p["e0"] if s.initial == "e0" else 0.0 for s in spec.states])


def rhs_and_jacobian(spec: ModelSpec, p: Mapping[str, float]) -> tuple[Rhs, Callable[[float, np.ndarray], np.ndarray]]:
    """dx/dt and its Jacobian for one subject (floats in ``p``)."""
    if spec.linear:
        a = rate_matrix(spec.name, {k: np.array([v]) for k, v in p.items()})[0]
        return (lambda t, x, r: a @ x + r), (lambda t, x: a)
    if spec.name == "warfarin_pkpd":
        return _warfarin(p)
    raise InvalidValueError(f"no right-hand side for model {spec.name!r}")


def _warfarin(p: Mapping[str, float]):
    ktr, ka, k = p["ktr"], p["ka"], p["cl"] / p["v"]
    emax, ec50, kout, v = p["emax"], p["ec50"], p["kout"], p["v"]
    kin = p["e0"] * kout

    def rhs(t: float, x: np.ndarray, r: np.ndarray) -> np.ndarray:
        depot, gut, central, effect = x
        c = central / v
        return (
            np.array(
                [
                    -ktr * depot,
                    ktr * depot - ka * gut,
                    ka * gut - k * central,
                    kin * (1 - emax * c / (ec50 + c)) - kout * effect,
                ]
            )
            + r
        )

    def jac(t: float, x: np.ndarray) -> np.ndarray:
        c = x[2] / v
        d_effect_d_central = -kin * emax * ec50 / (ec50 + c) ** 2 / v
        return np.array([[-ktr, 0, 0, 0], [ktr, -ka, 0, 0], [0, ka, -k, 0], [0, 0, d_effect_d_central, -kout]])

    return rhs, jac
