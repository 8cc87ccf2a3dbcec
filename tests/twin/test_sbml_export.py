"""The SBML export: valid L3V2 for every model, units that mean what pint means, loud failures, the CLI."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import libsbml
import pytest
import typer
from typer.testing import CliRunner

from twin.catalogue import all_models, get_model
from twin.errors import TwinError, UnitError, UnknownParameterError
from twin.sbml import SbmlExportError, export_sbml, unit_id
from twin.units import Q_
from ui.cli.app import app as chiptwin

MODELS = list(all_models())
# SBML base units in SI: litre and gram are 1e-3 of pint's m^3 and kg
SI = {
    "litre": (1e-3, "meter ** 3"),
    "gram": (1e-3, "kilogram"),
    "metre": (1.0, "meter"),
    "second": (1.0, "second"),
    "mole": (1.0, "mole"),
    "ampere": (1.0, "ampere"),
    "dimensionless": (1.0, ""),
}


def read(text: str) -> libsbml.SBMLDocument:
    document = libsbml.readSBMLFromString(text)
    assert document.getNumErrors(libsbml.LIBSBML_SEV_ERROR) == 0
    return document


@pytest.mark.parametrize("name", MODELS)
def test_every_model_is_consistent_l3v2(name: str) -> None:
    spec = get_model(name)
    document = read(export_sbml(name))
    document.checkConsistency()
    problems = [document.getError(i) for i in range(document.getNumErrors())]
    errors = [e.getMessage() for e in problems if e.getSeverity() >= libsbml.LIBSBML_SEV_ERROR]
    assert errors == []
    # the only warnings left: bare numbers (e.g. the 1 of "1 - emax·C/(ec50 + C)") have no units
    assert {e.getErrorId() for e in problems} <= {libsbml.UndeclaredUnits}
    model = document.getModel()
    assert (document.getLevel(), document.getVersion(), model.getId()) == (3, 2, name)
    rate_rules = {r.getVariable(): libsbml.formulaToL3String(r.getMath()) for r in model.getListOfRules() if r.isRate()}
    assert set(rate_rules) == set(spec.state_names)
    assignments = {r.getVariable() for r in model.getListOfRules() if r.isAssignment()}
    assert assignments == set(spec.assignments) | {o.name for o in spec.observables}
    for item in (*spec.parameters, *spec.constants):
        parameter = model.getParameter(item.name)
        assert parameter.getConstant() and parameter.getValue() == item.default
        assert parameter.getUnits() == unit_id(item.unit)
    for state in spec.states:
        element = model.getSpecies(state.name) or model.getParameter(state.name)
        assert not element.getConstant()
        if isinstance(element, libsbml.Species):
            assert element.getHasOnlySubstanceUnits() and element.getCompartment() == "compartment"
    assert model.getCompartment("compartment").getSize() == 1.0
    assert model.getNumReactions() == 0 and model.getNumEvents() == 0


@pytest.mark.parametrize("name", MODELS)
def test_unit_definitions_match_pint(name: str) -> None:
    model = read(export_sbml(name)).getModel()
    declared = {u.unit for u in (*get_model(name).parameters, *get_model(name).constants, *get_model(name).states)}
    for unit in declared - {"dimensionless"}:
        definition = model.getUnitDefinition(unit_id(unit))
        factor, si = 1.0, Q_(1.0, "")
        for k in range(definition.getNumUnits()):
            u = definition.getUnit(k)
            base, pint_unit = SI[libsbml.UnitKind_toString(u.getKind())]
            factor *= (u.getMultiplier() * 10.0 ** u.getScale() * base) ** u.getExponent()
            si = si * Q_(1.0, pint_unit) ** u.getExponent()
        expected = Q_(1.0, unit).to_base_units()
        assert si.dimensionality == expected.dimensionality, unit
        assert math.isclose(factor, expected.magnitude, rel_tol=1e-12), unit


def test_parameters_override_defaults_with_units(tmp_path: Path) -> None:
    path = tmp_path / "oral.xml"
    text = export_sbml("oral_1cpt", path, parameters={"cl": "500 mL/h", "v": Q_(30.0, "L"), "ka": 2})
    assert path.read_text() == text
    model = read(text).getModel()
    assert [model.getParameter(n).getValue() for n in ("cl", "v", "ka")] == [0.5, 30.0, 2.0]
    with pytest.raises(UnknownParameterError, match="'vmax'"):
        export_sbml("oral_1cpt", parameters={"vmax": 1.0})
    with pytest.raises(UnitError, match="cl"):
        export_sbml("oral_1cpt", parameters={"cl": "3 mg"})
    with pytest.raises(TwinError, match="positive"):
        export_sbml("liver_chip", parameters={"V_c": -1.0})


def test_initial_assignments_follow_parameters() -> None:
    model = read(export_sbml("liver_chip")).getModel()
    assert libsbml.formulaToL3String(model.getInitialAssignmentBySymbol("O2").getMath()) == "O2_sat - ocr / kla"
    assert model.getParameter("Phi").getValue() == 1.0


@pytest.mark.parametrize(
    ("formula", "says"),
    [
        ("cl / v * (central", "does not parse"),
        ("clearance / v * central", "'clearance'"),
        ("foo(central)", "unknown function 'foo'"),
    ],
)
def test_bad_formula_fails_naming_model_and_formula(formula: str, says: str) -> None:
    spec = dataclasses.replace(get_model("iv_1cpt"), name="broken", odes={"central": formula})
    with pytest.raises(SbmlExportError, match="broken") as caught:
        export_sbml(spec)
    assert formula in str(caught.value) and says in str(caught.value)


def test_clashing_names_fail() -> None:
    spec = get_model("iv_1cpt")
    spec = dataclasses.replace(spec, observables=(dataclasses.replace(spec.observables[0], name="cl"),))
    with pytest.raises(SbmlExportError, match="'cl' is used twice"):
        export_sbml(spec)


# ---------------------------------------------------------------- CLI


@pytest.fixture
def app() -> typer.Typer:
    return chiptwin  # the real command line: user errors are mapped where users meet them


def test_cli_writes_sbml(app, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["export-sbml", "oral_1cpt", "-p", "cl=4", "-p", "v=50 L"])
    assert result.exit_code == 0, result.stderr
    model = read(result.stdout).getModel()
    assert (model.getParameter("cl").getValue(), model.getParameter("v").getValue()) == (4.0, 50.0)
    out = tmp_path / "liver.xml"
    result = CliRunner().invoke(app, ["export-sbml", "liver_chip", "--out", str(out)])
    assert result.exit_code == 0 and read(out.read_text()).getModel().getId() == "liver_chip"


@pytest.mark.parametrize(
    "arguments",
    [
        ["export-sbml", "no_such_model"],
        ["export-sbml", "oral_1cpt", "-p", "nope=1"],
        ["export-sbml", "oral_1cpt", "-p", "cl=3 mg"],
        ["export-sbml", "oral_1cpt", "-p", "cl"],
        ["export-sbml", "oral_1cpt", "-p", "cl=@CL"],
    ],
)
def test_cli_user_errors_are_one_line_exit_2(app, arguments: list[str]) -> None:
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
