"""The catalogue's PK specs (the SBML-infix contract) agree with the fast numerical forms."""

from __future__ import annotations

import re

import numpy as np
import pytest

from twin.catalogue import get_model
from twin.pk.systems import initial_state, observation_weights, rhs_and_jacobian

PK_MODELS = ("iv_1cpt", "oral_1cpt", "iv_2cpt", "oral_2cpt", "warfarin_pkpd")


def _evaluate(formula: str, names: dict[str, float]) -> float:
    assert re.fullmatch(r"[\w\s.+\-*/()]+", formula), f"unexpected syntax in {formula!r}"
    return float(eval(formula, {"__builtins__": {}}, dict(names)))  # arithmetic only (checked above)


@pytest.mark.parametrize("name", PK_MODELS)
def test_rhs_matches_the_infix_equations(name: str) -> None:
    spec = get_model(name)
    rng = np.random.default_rng(7)
    for _ in range(5):
        p = {q.name: float(q.default * rng.uniform(0.5, 2.0)) for q in spec.parameters}
        p["emax"] = min(p.get("emax", 0.5), 0.99)
        x = rng.uniform(0.0, 50.0, len(spec.states))
        names = {**p, **dict(zip(spec.state_names, x))}
        names.update({k: _evaluate(f, names) for k, f in spec.assignments.items()})
        expected = [_evaluate(spec.odes[s], names) for s in spec.state_names]
        rhs, jac = rhs_and_jacobian(spec, p)
        np.testing.assert_allclose(rhs(0.0, x, np.zeros_like(x)), expected, rtol=1e-12, atol=1e-12)
        for observable in spec.observables:
            c = observation_weights(spec, observable.name, {k: np.array([v]) for k, v in p.items()})[0]
            assert c @ x == pytest.approx(_evaluate(observable.expression, names), rel=1e-12)
        # the analytic Jacobian against central differences of the right-hand side
        step = 1e-6 * np.maximum(np.abs(x), 1.0)
        numeric = np.stack(
            [
                (rhs(0, x + dx, 0 * x) - rhs(0, x - dx, 0 * x)) / (2 * h)
                for dx, h in ((np.eye(len(x))[i] * step[i], step[i]) for i in range(len(x)))
            ],
            axis=1,
        )
        np.testing.assert_allclose(jac(0.0, x), numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", PK_MODELS)
def test_states_in_nonmem_order_and_cp_observable(name: str) -> None:
    spec = get_model(name)
    assert spec.state_names[0] == ("central" if name.startswith("iv_") else "depot")
    assert "central" in spec.state_names and "cp" in {o.name for o in spec.observables}
    assert set(spec.odes) == set(spec.state_names)
    assert spec.linear == (name != "warfarin_pkpd")
    for p in spec.parameters:
        assert 0 < p.lower < p.default <= p.upper


def test_warfarin_starts_at_baseline_effect() -> None:
    spec = get_model("warfarin_pkpd")
    p = spec.defaults()
    x0 = initial_state(spec, p)
    assert x0[spec.state_names.index("effect")] == p["e0"]
    rhs, _ = rhs_and_jacobian(spec, p)
    assert np.allclose(rhs(0.0, x0, np.zeros(4)), 0.0)  # no drug: at rest
