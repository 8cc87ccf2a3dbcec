"""The chip specs are MODELS.md §2, and the fast numerics are exactly the spec strings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twin.catalogue import get_model
from twin.chip import multi_organ_spec
from twin.chip.formula import evaluate, names_in, parse
from twin.chip.liver import LIVER_SYSTEM
from twin.chip.registry import system_for
from twin.errors import InvalidValueError
from twin.model import ModelSpec


def _eval_spec_rhs(spec: ModelSpec, x: dict, p: dict, c: dict) -> dict[str, float]:
    """An independent evaluation of the spec strings: Python's own eval on scalars."""
    ns = {**c, **p, **x, "exp": math.exp, "ln": math.log}
    for name, formula in spec.assignments.items():
        ns[name] = eval(formula.replace("^", "**"), {"__builtins__": {}}, ns)
    return {s: float(eval(spec.odes[s].replace("^", "**"), {"__builtins__": {}}, ns)) for s in spec.state_names}


def _random_point(spec: ModelSpec, rng: np.random.Generator) -> tuple[dict, dict, dict]:
    x = {s: rng.uniform(0.05, 5.0) for s in spec.state_names}
    p = {q.name: q.default * math.exp(rng.normal(0, 0.5)) for q in spec.parameters}
    c = {q.name: q.default for q in spec.constants}
    return x, p, c


def test_liver_chip_is_in_the_catalogue_with_the_contract_names():
    spec = get_model("liver_chip")
    assert spec.state_names == ("A_m", "A_c", "A_p", "M_m", "Phi", "O2", "V_m")
    assert spec.parameter_names == ("ps", "vmax", "km", "kon", "koff", "kmax", "ec50", "hill", "ocr")
    assert [o.name for o in spec.observables] == ["drug_medium", "metabolite_medium", "oxygen", "viability"]
    assert {c.name for c in spec.constants} == {"V_m0", "V_c", "N_cells", "O2_sat", "kla"}
    assert spec.defaults()["O2_sat"] == 100.0
    assert all(p.lower < p.default < p.upper for p in spec.parameters)


@pytest.mark.parametrize("model", ["liver_chip", "multi_organ"])
def test_every_formula_parses_and_names_only_known_symbols(model):
    spec = get_model(model)
    known = set(spec.state_names) | set(spec.parameter_names) | {c.name for c in spec.constants}
    known |= set(spec.assignments)
    formulas = [
        *spec.odes.values(),
        *spec.assignments.values(),
        *(o.expression for o in spec.observables),
        *(s.initial for s in spec.states),
    ]
    for formula in formulas:
        parse(formula)
        assert names_in(formula) <= known, formula
    assert set(spec.odes) == set(spec.state_names)


def test_hand_written_liver_rhs_equals_the_spec_strings_at_random_states():
    rng = np.random.default_rng(7)
    spec = LIVER_SYSTEM.spec
    for _ in range(20):
        x, p, c = _random_point(spec, rng)
        expected = _eval_spec_rhs(spec, x, p, c)
        got = LIVER_SYSTEM.rhs(
            np.array([list(x.values())]), np.array([list(p.values())]), np.array([list(c.values())])
        )[0]
        np.testing.assert_allclose(got, [expected[s] for s in spec.state_names], rtol=1e-12, atol=1e-12)


def test_compiled_multi_organ_rhs_equals_the_spec_strings():
    rng = np.random.default_rng(3)
    system = system_for("multi_organ")
    spec = system.spec
    x, p, c = _random_point(spec, rng)
    expected = _eval_spec_rhs(spec, x, p, c)
    got = system.rhs(np.array([list(x.values())]), np.array([list(p.values())]), np.array([list(c.values())]))[0]
    np.testing.assert_allclose(got, [expected[s] for s in spec.state_names], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("derivative", ["jac", "dfdp"])
def test_analytic_liver_derivatives_match_central_differences(derivative):
    rng = np.random.default_rng(11)
    spec = LIVER_SYSTEM.spec
    x, p, c = (np.array([list(d.values())]) for d in _random_point(spec, rng))
    analytic = getattr(LIVER_SYSTEM, derivative)(x, p, c)[0]
    wrt = x if derivative == "jac" else p
    numeric = np.empty_like(analytic)
    for j in range(wrt.shape[1]):
        step = 1e-6 * wrt[0, j]
        up, down = wrt.copy(), wrt.copy()
        up[0, j] += step
        down[0, j] -= step
        args_up = (up, p, c) if derivative == "jac" else (x, up, c)
        args_down = (down, p, c) if derivative == "jac" else (x, down, c)
        numeric[:, j] = (LIVER_SYSTEM.rhs(*args_up)[0] - LIVER_SYSTEM.rhs(*args_down)[0]) / (2 * step)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7)


def test_initial_oxygen_is_the_steady_state_and_holds_without_drug():
    spec = get_model("liver_chip")
    d = spec.defaults()
    x0 = LIVER_SYSTEM.initial(
        np.array([[p.default for p in spec.parameters]]), np.array([[c.default for c in spec.constants]])
    )[0]
    assert x0[spec.state_names.index("O2")] == pytest.approx(d["O2_sat"] - d["ocr"] / d["kla"], rel=1e-15)
    dx = LIVER_SYSTEM.rhs(
        x0[None], np.array([[p.default for p in spec.parameters]]), np.array([[c.default for c in spec.constants]])
    )[0]
    assert np.all(dx == 0.0)  # nothing moves before the first dose


def test_multi_organ_modules_are_optional_and_named_by_selection():
    full = get_model("multi_organ")
    assert full.name == "multi_organ"
    liver_only = multi_organ_spec(("liver",))
    assert "A_ap" not in liver_only.state_names and "clr_kidney" not in liver_only.parameter_names
    assert liver_only.odes["A_R"] == "Q_liver * (C_liver - C_R)"
    gut_kidney = multi_organ_spec(("kidney", "gut"))
    assert gut_kidney.name == "multi_organ_gut_kidney"
    assert {"A_ap", "B_gut", "A_urine"} <= set(gut_kidney.state_names)
    assert "papp_area" in gut_kidney.parameter_names and "vmax_liver" not in gut_kidney.parameter_names
    assert "kon_heart" in full.parameter_names and "teer_gut" in [o.name for o in full.observables]
    flows = {c.name: c.default for c in full.constants if c.name.startswith("Q_")}
    assert flows["Q_kidney"] == pytest.approx(0.19 * 30 / 24)  # Maass 2017: 30 mL/day, kidney 19 %


def test_bad_module_selection_says_what_to_choose():
    with pytest.raises(InvalidValueError, match="choose a non-empty set"):
        multi_organ_spec(("lung",))


def test_formula_evaluator_refuses_anything_but_arithmetic():
    assert evaluate("a^2 + exp(0)", {"a": 3.0}) == 10.0
    with pytest.raises(InvalidValueError, match="not allowed"):
        parse("a.__class__")
    with pytest.raises(InvalidValueError, match="only the functions"):
        parse("open(1)")


@pytest.mark.parametrize("model", ["liver_chip", "multi_organ"])
def test_libsbml_reads_every_formula_as_sbml_l3(model):
    import libsbml

    spec = get_model(model)
    formulas = [
        *spec.odes.values(),
        *spec.assignments.values(),
        *(o.expression for o in spec.observables),
        *(s.initial for s in spec.states),
    ]
    unreadable = [f for f in formulas if libsbml.parseL3Formula(f) is None]
    assert unreadable == []
