"""Classical PK models of the catalogue (MODELS.md §1), in human units: h, mg, L, mg/L, L/h.

States are listed in NONMEM compartment order (CMT 1 = depot where there is one), so a
dataset's CMT n doses ``spec.states[n - 1]``. Every model also takes NONMEM's per-compartment
dosing parameters ``fN``, ``alagN``, ``rN``, ``dN`` (see ``twin.pk.dosing``); they act on
dose events, not on the equations, so they are not listed here.
"""

from __future__ import annotations

from twin.model import ModelSpec, Observable, Parameter, State

VERSION = "1.0.0"


def _p(name: str, unit: str, default: float, description: str, lower: float = 1e-6, upper: float = 1e6) -> Parameter:
    return Parameter(name=name, unit=unit, default=default, lower=lower, upper=upper, description=description)


KA = _p("ka", "1/h", 1.0, "first-order absorption rate constant")
CL = _p("cl", "L/h", 1.0, "clearance")
V = _p("v", "L", 20.0, "volume of distribution")
V1 = _p("v1", "L", 20.0, "central volume")
Q = _p("q", "L/h", 2.0, "inter-compartmental clearance")
V2 = _p("v2", "L", 50.0, "peripheral volume")

DEPOT = State("depot", "mg", "absorption depot (gut lumen)")
CENTRAL = State("central", "mg", "central compartment (plasma)")
PERIPHERAL = State("peripheral", "mg", "peripheral compartment")

CP_1CPT = Observable("cp", "mg/L", "central / v", "plasma concentration")
CP_2CPT = Observable("cp", "mg/L", "central / v1", "plasma concentration")

_ELIM_1CPT = "cl / v * central"
_CENTRAL_2CPT = "-(cl / v1 + q / v1) * central + q / v2 * peripheral"
_PERIPHERAL_2CPT = "q / v1 * central - q / v2 * peripheral"

IV_1CPT = ModelSpec(
    name="iv_1cpt",
    version=VERSION,
    description="One compartment, intravenous dosing, linear elimination.",
    states=(CENTRAL,),
    parameters=(CL, V),
    observables=(CP_1CPT,),
    odes={"central": f"-{_ELIM_1CPT}"},
    linear=True,
)

ORAL_1CPT = ModelSpec(
    name="oral_1cpt",
    version=VERSION,
    description="One compartment with a first-order absorption depot.",
    states=(DEPOT, CENTRAL),
    parameters=(KA, CL, V),
    observables=(CP_1CPT,),
    odes={"depot": "-ka * depot", "central": f"ka * depot - {_ELIM_1CPT}"},
    linear=True,
)

IV_2CPT = ModelSpec(
    name="iv_2cpt",
    version=VERSION,
    description="Two compartments, intravenous dosing, linear elimination from the central one.",
    states=(CENTRAL, PERIPHERAL),
    parameters=(CL, V1, Q, V2),
    observables=(CP_2CPT,),
    odes={"central": _CENTRAL_2CPT, "peripheral": _PERIPHERAL_2CPT},
    linear=True,
)

ORAL_2CPT = ModelSpec(
    name="oral_2cpt",
    version=VERSION,
    description="Two compartments with a first-order absorption depot.",
    states=(DEPOT, CENTRAL, PERIPHERAL),
    parameters=(KA, CL, V1, Q, V2),
    observables=(CP_2CPT,),
    odes={
        "depot": "-ka * depot",
        "central": "ka * depot - (cl / v1 + q / v1) * central + q / v2 * peripheral",
        "peripheral": _PERIPHERAL_2CPT,
    },
    linear=True,
)

# Warfarin PK/PD (nlmixr2 "multiple endpoints" article); defaults are its SAEM estimates.
WARFARIN_PKPD = ModelSpec(
    name="warfarin_pkpd",
    version=VERSION,
    description="Warfarin: transit depot -> gut -> central, linear clearance; turnover PD on PCA.",
    states=(
        DEPOT,
        State("gut", "mg", "gut (absorption transit compartment)"),
        CENTRAL,
        State("effect", "%", "prothrombin complex activity (PCA)", initial="e0"),
    ),
    parameters=(
        _p("ktr", "1/h", 1.55, "transit rate constant depot -> gut"),
        _p("ka", "1/h", 0.77, "absorption rate constant gut -> central"),
        _p("cl", "L/h", 0.14, "clearance"),
        _p("v", "L", 7.43, "volume of distribution"),
        _p("emax", "dimensionless", 0.969, "maximal inhibition of PCA production", upper=1.0),
        _p("ec50", "mg/L", 0.91, "concentration at half-maximal inhibition"),
        _p("kout", "1/h", 0.0531, "PCA turnover (loss) rate constant"),
        _p("e0", "%", 96.6, "baseline PCA", lower=1e-3, upper=1e4),
    ),
    observables=(
        Observable("cp", "mg/L", "central / v", "plasma warfarin concentration"),
        Observable("pca", "%", "effect", "prothrombin complex activity"),
    ),
    odes={
        "depot": "-ktr * depot",
        "gut": "ktr * depot - ka * gut",
        "central": "ka * gut - cl / v * central",
        "effect": "kin * (1 - emax * (central / v) / (ec50 + central / v)) - kout * effect",
    },
    assignments={"kin": "e0 * kout"},
    linear=False,
)

MODELS: tuple[ModelSpec, ...] = (IV_1CPT, ORAL_1CPT, IV_2CPT, ORAL_2CPT, WARFARIN_PKPD)
