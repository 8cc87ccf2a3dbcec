"""Export a catalogue model to SBML Level 3 Version 2 (python-libsbml): the model's equations.

    from twin.sbml import export_sbml
    text = export_sbml("oral_1cpt", "oral_1cpt.xml", parameters={"cl": "4 L/h"})

Conventions (the contract is MODELS.md and the ``ModelSpec``; this is its SBML form):

- **One unit-volume compartment** (id ``compartment``, size 1 in the model's volume unit,
  constant). It carries no physiology: the model's own volumes (``v``, ``V_c``, ...) are
  parameters or states, and every formula divides by them explicitly.
- **States are amounts, integrated by rate rules.** A state whose unit is an amount (mg,
  nmol) is a *species* in that compartment with ``hasOnlySubstanceUnits="true"``, so its
  symbol in every formula is its amount, exactly as in the spec. Any other state (viability,
  oxygen %, a medium volume changed by events) is a non-constant *parameter*. Either way its
  equation is a ``rateRule`` with the spec's formula verbatim: there are no reactions, so the
  ODEs are exactly the spec's and nothing is rescaled by compartment sizes.
- **Parameters and constants** are constant parameters with their default values (or the
  ``parameters`` given) and units; estimable ones say so, with their bounds, in their notes.
- **Assignments and observables** are non-constant parameters set by ``assignmentRule``s (an
  assignment's units are those libsbml derives from its formula, where it can).
- **Initial values**: a state whose ``initial`` is a number gets it as its value; any other
  (e.g. ``O2_sat - ocr / kla``) becomes an ``initialAssignment``.
- **Units**: each pint unit string of the spec becomes a ``unitDefinition`` over SBML base
  units (litre for volumes, gram for masses; factors as scale or multiplier); model time
  is the spec's time unit (h), substance the amount unit, volume the volume unit.
- **Dosing is not in the document** (it holds the equations). Doses, samples and media changes
  are applied by the simulator: integrate to the event time, change the state (a bolus adds its
  amount to the dosed state: with libroadrunner ``rr[state] += amount`` between ``simulate``
  calls, as tests/twin/test_sbml_agreement.py does), integrate on. NONMEM's dosing parameters
  (``fN``, ``alagN``, ``rN``, ``dN``) act on dose records, so they are not exported either.

Formulas are read with ``libsbml.parseL3Formula`` (default settings: note that there ``log(x)``
is the base-10 logarithm; write ``ln`` for the natural one). A formula that does not parse, or
that names something the model does not define, raises ``SbmlExportError``.
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path
from typing import Mapping

import libsbml

from twin.catalogue import get_model
from twin.errors import InvalidValueError, TwinError
from twin.model import ModelSpec, Parameter, State
from twin.units import Q_, to_unit

COMPARTMENT = "compartment"
_XHTML = '<body xmlns="http://www.w3.org/1999/xhtml">{}</body>'
_PINT_TO_SBML = {
    "meter": ("metre", 1.0),
    "kilogram": ("gram", 1000.0),
    "second": ("second", 1.0),
    "mole": ("mole", 1.0),
    "ampere": ("ampere", 1.0),
    "kelvin": ("kelvin", 1.0),
    "candela": ("candela", 1.0),
}


class SbmlExportError(TwinError):
    """A model that cannot be written as valid SBML (a formula, a name or a unit); the message names it."""


def _check(code: int, what: str) -> None:
    if code != libsbml.LIBSBML_OPERATION_SUCCESS:
        raise SbmlExportError(f"libsbml refused {what}: {libsbml.OperationReturnValue_toString(code)}")


def _set(element: libsbml.SBase, **attributes: object) -> None:
    """element.setX(value) for each X=value, checked."""
    for name, value in attributes.items():
        _check(getattr(element, "set" + name[0].upper() + name[1:])(value), f"{name}={value!r}")


def _base_factors(unit: str) -> dict[str, list[float]]:
    """``unit`` as {SBML kind: [exponent, factor]}: unit = Π factor·kind^exponent (the scale factor
    of each pint component, e.g. 1e-3 of mL, kept on its own first kind so it reads naturally)."""
    merged: dict[str, list[float]] = {}
    for name, power in Q_(1.0, unit).unit_items():
        base = Q_(1.0, name).to_base_units()
        factor, kinds = float(base.magnitude), []
        for pint_name, exponent in base.unit_items():
            kind, scale = _PINT_TO_SBML[pint_name]
            factor *= scale**exponent
            if kind == "metre" and exponent % 3 == 0:  # volumes in litres (1 m^3 = 1000 L)
                kind, factor, exponent = "litre", factor * 1000.0 ** (exponent // 3), exponent // 3
            kinds.append((kind, exponent))
        kinds = kinds or [("dimensionless", 1)]
        for k, (kind, exponent) in enumerate(kinds):
            entry = merged.setdefault(kind, [0.0, 1.0])
            entry[0] += exponent * power
            entry[1] *= factor**power if k == 0 else 1.0
    for kind in [k for k, (e, f) in merged.items() if e == 0 and k != "dimensionless"]:
        leftover = merged.pop(kind)[1]  # e.g. mL/L: the kind cancels, its factor does not
        merged.setdefault("dimensionless", [1.0, 1.0])[1] *= leftover
    return merged


def unit_id(unit: str) -> str:
    """The SBML UnitSId used for a pint unit string ('mL/h' -> 'u_mL_per_h'; 'dimensionless' as is)."""
    if unit.strip() == "dimensionless":
        return "dimensionless"
    text = unit.replace("%", "percent").replace("/", "_per_").replace("*", "_").replace("^", "")
    return "u_" + re.sub(r"\W", "_", text).strip("_")


def _add_unit(model: libsbml.Model, unit: str) -> str:
    uid = unit_id(unit)
    if uid == "dimensionless" or model.getUnitDefinition(uid) is not None:
        return uid
    try:
        factors = _base_factors(unit)
    except Exception as exc:  # pint's parse and dimensionality errors, and base units SBML lacks
        raise SbmlExportError(f"unit {unit!r} of model {model.getId()!r} cannot be written in SBML ({exc})") from None
    definition = model.createUnitDefinition()
    _check(definition.setId(uid), f"unit id {uid!r}")
    definition.setName(unit)
    for kind, (exponent, factor) in factors.items():
        sbml_unit = definition.createUnit()
        sbml_unit.setKind(libsbml.UnitKind_forName(kind))
        sbml_unit.setExponent(exponent)
        root = factor ** (1.0 / exponent)
        decade = math.log10(root)
        exact = abs(decade - round(decade)) < 1e-9  # a power of ten: written as scale, multiplier 1
        sbml_unit.setScale(int(round(decade)) if exact else 0)
        sbml_unit.setMultiplier(1.0 if exact else root)
    return uid


def _unit_of_kind(spec: ModelSpec, dimensions: tuple[str, ...], fallback: str) -> str:
    units = (item.unit for item in (*spec.states, *spec.parameters, *spec.constants))
    return next((u for u in units if str(Q_(1.0, u).dimensionality) in dimensions), fallback)


def _math(spec: ModelSpec, formula: str, known: set[str], where: str) -> libsbml.ASTNode:
    """Parse ``formula`` and check every name in it is defined in the model."""
    node = libsbml.parseL3Formula(formula)
    if node is None:
        raise SbmlExportError(
            f"model {spec.name!r}, {where}: formula {formula!r} does not parse as SBML L3 "
            f"infix ({libsbml.getLastParseL3Error().strip()})"
        )
    stack = [node]
    while stack:
        current = stack.pop()
        stack.extend(current.getChild(i) for i in range(current.getNumChildren()))
        if current.getType() == libsbml.AST_FUNCTION:
            raise SbmlExportError(
                f"model {spec.name!r}, {where}: formula {formula!r} calls unknown function {current.getName()!r}"
            )
        if current.getType() == libsbml.AST_NAME and current.getName() not in known:
            raise SbmlExportError(
                f"model {spec.name!r}, {where}: formula {formula!r} uses {current.getName()!r}, "
                "which is not a state, parameter, constant or assignment of the model"
            )
    return node


def _values(spec: ModelSpec, parameters: Mapping[str, object] | None) -> dict[str, float]:
    values = spec.defaults()
    units = {item.name: item.unit for item in (*spec.parameters, *spec.constants)}
    for name, value in (parameters or {}).items():
        if name not in units:
            spec.parameter(name)  # raises UnknownParameterError listing the known names
        number = to_unit(value, units[name], what=f"parameter {name}")
        if number <= 0:
            raise InvalidValueError(f"parameter {name} is {number:g} {units[name]}; it must be positive")
        values[name] = number
    return values


def _ids(spec: ModelSpec) -> list[str]:
    ids = [
        COMPARTMENT,
        *spec.state_names,
        *spec.parameter_names,
        *(c.name for c in spec.constants),
        *spec.assignments,
        *(o.name for o in spec.observables),
    ]
    seen: set[str] = set()
    for name in ids:
        if name in seen:
            raise SbmlExportError(
                f"model {spec.name!r}: the name {name!r} is used twice (states, parameters, "
                "constants, assignments and observables share one SBML namespace)"
            )
        if not libsbml.SyntaxChecker.isValidSBMLSId(name):
            raise SbmlExportError(f"model {spec.name!r}: {name!r} is not a valid SBML identifier")
        seen.add(name)
    missing = set(spec.state_names) ^ set(spec.odes)
    if missing:
        raise SbmlExportError(f"model {spec.name!r}: states and ODEs do not match ({', '.join(sorted(missing))})")
    return ids


def _notes(element: libsbml.SBase, text: str) -> None:
    _check(element.setNotes(_XHTML.format(f"<p>{html.escape(text)}</p>")), "notes")


def _is_amount(unit: str) -> bool:
    return str(Q_(1.0, unit).dimensionality) in ("[substance]", "[mass]")


def _parameter(
    model: libsbml.Model,
    name: str,
    unit: str | None,
    *,
    constant: bool,
    value: float | None = None,
    description: str = "",
) -> libsbml.Parameter:
    parameter = model.createParameter()
    _set(parameter, id=name, constant=constant)
    optional = {"units": unit and _add_unit(model, unit), "value": value, "name": description}
    _set(parameter, **{key: item for key, item in optional.items() if item not in (None, "")})
    return parameter


def _infer_units(sbml: libsbml.Model, names: list[str]) -> None:
    """Give each assignment the units libsbml derives from its formula, where they are fully declared
    (best effort: one with a bare number or a parameter exponent stays without units)."""
    pending = list(names)
    while pending:
        sbml.populateListFormulaUnitsData()
        done = []
        for name in pending:
            rule = sbml.getAssignmentRuleByVariable(name)
            derived = rule.getDerivedUnitDefinition()
            if derived is None or rule.containsUndeclaredUnits() or derived.getNumUnits() == 0:
                continue
            definition = derived.clone()
            libsbml.UnitDefinition.simplify(definition)
            definition.setId(f"u_of_{name}")
            _check(sbml.addUnitDefinition(definition), f"units of {name}")
            sbml.getParameter(name).setUnits(definition.getId())
            done.append(name)
        if not done:
            return
        pending = [name for name in pending if name not in done]


def _rule(sbml: libsbml.Model, kind: str, variable: str, math: libsbml.ASTNode) -> None:
    rule = sbml.createRateRule() if kind == "rate" else sbml.createAssignmentRule()
    rule.setVariable(variable)
    _check(rule.setMath(math), f"the {kind} rule of {variable}")


def _add_state(sbml: libsbml.Model, spec: ModelSpec, state: State, known: set[str]) -> None:
    """An amount state is a species (amount in the unit compartment), any other a parameter; both by rate rule."""
    if _is_amount(state.unit):
        element = sbml.createSpecies()
        _set(
            element,
            id=state.name,
            compartment=COMPARTMENT,
            hasOnlySubstanceUnits=True,
            boundaryCondition=False,
            constant=False,
            substanceUnits=_add_unit(sbml, state.unit),
            name=state.description,
        )
    else:
        element = _parameter(sbml, state.name, state.unit, constant=False, description=state.description)
    initial = _math(spec, state.initial, known, f"initial value of {state.name}")
    if not initial.isNumber():
        assignment = sbml.createInitialAssignment()
        assignment.setSymbol(state.name)
        _check(assignment.setMath(initial), f"initial assignment of {state.name}")
    elif isinstance(element, libsbml.Species):
        element.setInitialAmount(initial.getValue())
    else:
        element.setValue(initial.getValue())
    _rule(sbml, "rate", state.name, _math(spec, spec.odes[state.name], known, f"ODE of {state.name}"))


def sbml_document(model: str | ModelSpec, parameters: Mapping[str, object] | None = None) -> libsbml.SBMLDocument:
    """The model as an SBML L3V2 document (see the module docstring for the conventions)."""
    spec = model if isinstance(model, ModelSpec) else get_model(model)
    known = set(_ids(spec))
    values = _values(spec, parameters)
    document = libsbml.SBMLDocument(3, 2)
    sbml = document.createModel()
    _check(sbml.setId(spec.name), f"model id {spec.name!r}")
    sbml.setName(f"{spec.name} {spec.version}")
    _notes(
        sbml,
        f"{spec.description} ChipTwin catalogue model {spec.name}, version {spec.version}. "
        "Dosing and other events are applied by the simulator, not by this document.",
    )
    amount_unit = _add_unit(sbml, _unit_of_kind(spec, ("[substance]", "[mass]"), "mg"))
    volume_unit = _add_unit(sbml, _unit_of_kind(spec, ("[length] ** 3",), "L"))
    sbml.setTimeUnits(_add_unit(sbml, spec.time_unit))
    sbml.setSubstanceUnits(amount_unit)
    sbml.setExtentUnits(amount_unit)
    sbml.setVolumeUnits(volume_unit)
    compartment = sbml.createCompartment()
    _set(compartment, id=COMPARTMENT, constant=True, size=1.0, spatialDimensions=3, units=volume_unit)
    _notes(compartment, "Unit-volume placeholder: states are amounts; the model's volumes are its parameters.")

    for item in (*spec.parameters, *spec.constants):
        p = _parameter(sbml, item.name, item.unit, constant=True, value=values[item.name], description=item.description)
        role = (
            f"Estimable (log scale), bounds [{item.lower:g}, {item.upper:g}] {item.unit}"
            if isinstance(item, Parameter)
            else "Given constant (not estimated)"
        )
        _notes(p, f"{item.description}. {role}.")
    for state in spec.states:
        _add_state(sbml, spec, state, known)
    for name, formula in spec.assignments.items():
        _parameter(sbml, name, None, constant=False)
        _rule(sbml, "assignment", name, _math(spec, formula, known, f"assignment {name}"))
    _infer_units(sbml, list(spec.assignments))
    for observable in spec.observables:
        p = _parameter(sbml, observable.name, observable.unit, constant=False, description=observable.description)
        _notes(p, f"Observable: {observable.description}.")
        _rule(
            sbml,
            "assignment",
            observable.name,
            _math(spec, observable.expression, known, f"observable {observable.name}"),
        )
    return document


def export_sbml(
    name_or_spec: str | ModelSpec, path: str | Path | None = None, parameters: Mapping[str, object] | None = None
) -> str:
    """The model as SBML L3V2 text; also written to ``path`` when given.

    ``parameters``: name -> value (a number in the catalogue unit, a pint Quantity, or a
    string such as ``"4 L/h"``) replacing the default of a parameter or constant.
    """
    text = libsbml.writeSBMLToString(sbml_document(name_or_spec, parameters))
    if path is not None:
        Path(path).write_text(text)
    return text
