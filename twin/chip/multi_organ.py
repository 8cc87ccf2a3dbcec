"""``multi_organ`` (MODELS.md §2): organ modules around a mixing reservoir, built from a selection.

    multi_organ_spec(modules=("gut", "liver", "kidney", "heart"))

Every module has a medium channel (``A_<m>``, volume ``V_ch_<m>``, flow ``Q_<m>`` from and
back to the reservoir), a cell compartment (``A_c_<m>``, ``V_cell_<m>``) joined by
``ps_<m>``, PDMS uptake (``A_p_<m>``; ``kon_<m>``, ``koff_<m>``) and PD as in ``liver_chip``
(viability ``Phi_<m>``, oxygen ``O2_<m>``). The gut adds an apical lumen (``A_ap``, volume
``V_ap``) that takes oral doses, with flux ``papp_area·(C_ap − C_c_gut)`` into the cells, and
a barrier integrity ``B_gut`` (TEER = teer0_gut·B_gut, B' = −kill(C)·B with its own maximal
rate ``kbar_gut``). The liver metabolises (``vmax_liver``, ``km_liver``; metabolite formed
``M_liver``); the kidney clears from its channel (``clr_kidney``; cleared drug ``A_urine``).
The heart (or any PD-only target) has no elimination. Drug amounts are the states (nmol);
volumes ``V_R`` and ``V_ap`` are states with zero derivative, changed only by events (see
``twin.chip.liver``'s note on ``V_m``).

Default scales follow Maass et al. 2017 (Integr Biol 9:290): a 30 mL/day (1.25 mL/h) chip
circulation split like human blood flow (gut 10 %, liver 5 %, kidney 19 %; heart 4 %,
coronary), a 0.4 mL mixer, a 0.2 mL liver with 5e5 hepatocytes. Values the paper does not
give (other channel volumes, cell volumes, rate constants) are round chip-scale placeholders,
to be replaced by calibration.
"""

from __future__ import annotations

from twin.chip.system import Medium
from twin.errors import InvalidValueError
from twin.model import Constant, ModelSpec, Observable, Parameter, State

VERSION = "1.0.0"
ALL_MODULES = ("gut", "liver", "kidney", "heart")
CHIP_FLOW_ML_H = 30.0 / 24.0
FLOW_FRACTION = {"gut": 0.10, "liver": 0.05, "kidney": 0.19, "heart": 0.04}
CHANNEL_ML = {"gut": 0.1, "liver": 0.2, "kidney": 0.1, "heart": 0.1}
CELL_ML = {"gut": 0.001, "liver": 0.0017, "kidney": 0.001, "heart": 0.001}
OCR = {"gut": 50.0, "liver": 150.0, "kidney": 80.0, "heart": 100.0}


def _p(name: str, unit: str, default: float, lower: float, upper: float, description: str) -> Parameter:
    return Parameter(name, unit, default, lower, upper, description)


def _module_parameters(m: str) -> list[Parameter]:
    return [
        _p(f"ps_{m}", "mL/h", 0.5, 1e-4, 1e3, f"{m}: channel/cell permeability-surface product"),
        _p(f"kon_{m}", "1/h", 0.05, 1e-6, 10.0, f"{m}: uptake rate constant into PDMS"),
        _p(f"koff_{m}", "1/h", 0.02, 1e-6, 10.0, f"{m}: release rate constant from PDMS"),
        _p(f"kmax_{m}", "1/h", 0.1, 1e-6, 10.0, f"{m}: maximal kill rate"),
        _p(f"ec50_{m}", "uM", 50.0, 1e-3, 1e5, f"{m}: cell concentration at half-maximal kill"),
        _p(f"hill_{m}", "dimensionless", 2.0, 0.1, 10.0, f"{m}: Hill coefficient of the kill rate"),
        _p(f"ocr_{m}", "percent/h", OCR[m], 1e-3, 1e4, f"{m}: oxygen consumption of the viable tissue"),
    ]


def _extra_parameters(m: str) -> list[Parameter]:
    return {
        "gut": [
            _p("papp_area", "mL/h", 0.05, 1e-6, 1e2, "gut: apparent permeability x area, lumen to cells"),
            _p("kbar_gut", "1/h", 0.1, 1e-6, 10.0, "gut: maximal rate of barrier (TEER) loss"),
        ],
        "liver": [
            _p("vmax_liver", "nmol/h", 1.0, 1e-4, 1e4, "liver: maximal metabolic rate"),
            _p("km_liver", "uM", 10.0, 1e-3, 1e4, "liver: Michaelis constant"),
        ],
        "kidney": [_p("clr_kidney", "mL/h", 0.1, 1e-6, 1e2, "kidney: clearance from the channel")],
    }.get(m, [])


def _module_constants(m: str) -> list[Constant]:
    return [
        Constant(f"Q_{m}", "mL/h", FLOW_FRACTION[m] * CHIP_FLOW_ML_H, f"{m}: flow from and back to the reservoir"),
        Constant(f"V_ch_{m}", "mL", CHANNEL_ML[m], f"{m}: medium channel volume"),
        Constant(f"V_cell_{m}", "mL", CELL_ML[m], f"{m}: cell compartment volume"),
    ]


def _module_states(m: str) -> list[State]:
    return [
        State(f"A_{m}", "nmol", f"{m}: drug in the medium channel"),
        State(f"A_c_{m}", "nmol", f"{m}: drug in the cells"),
        State(f"A_p_{m}", "nmol", f"{m}: drug in the chip material (PDMS)"),
        State(f"Phi_{m}", "dimensionless", f"{m}: viable fraction of the cells", initial="1"),
        State(f"O2_{m}", "percent", f"{m}: dissolved oxygen", initial=f"O2_sat - ocr_{m} / kla"),
    ]


def _hill(rate: str, m: str) -> str:
    return f"{rate} * C_c_{m}^hill_{m} / (ec50_{m}^hill_{m} + C_c_{m}^hill_{m})"


def _module_equations(m: str) -> tuple[dict[str, str], dict[str, str]]:
    """(assignments, odes) of one module."""
    assignments = {
        f"C_{m}": f"A_{m} / V_ch_{m}",
        f"C_c_{m}": f"A_c_{m} / V_cell_{m}",
        f"kill_{m}": _hill(f"kmax_{m}", m),
    }
    channel = f"Q_{m} * (C_R - C_{m}) - ps_{m} * (C_{m} - C_c_{m}) - kon_{m} * A_{m} + koff_{m} * A_p_{m}"
    cells = f"ps_{m} * (C_{m} - C_c_{m})"
    odes = {}
    if m == "gut":
        assignments.update(
            {"C_ap": "A_ap / V_ap", "J_ap": "papp_area * (C_ap - C_c_gut)", "kill_bar_gut": _hill("kbar_gut", m)}
        )
        cells += " + J_ap"
        odes.update({"A_ap": "-J_ap", "V_ap": "0", "B_gut": "-kill_bar_gut * B_gut"})
    if m == "liver":
        assignments["v_liver"] = "vmax_liver * Phi_liver * C_c_liver / (km_liver + C_c_liver)"
        cells += " - v_liver"
        odes["M_liver"] = "v_liver"
    if m == "kidney":
        channel += " - clr_kidney * C_kidney"
        odes["A_urine"] = "clr_kidney * C_kidney"
    odes.update(
        {
            f"A_{m}": channel,
            f"A_c_{m}": cells,
            f"A_p_{m}": f"kon_{m} * A_{m} - koff_{m} * A_p_{m}",
            f"Phi_{m}": f"-kill_{m} * Phi_{m}",
            f"O2_{m}": f"kla * (O2_sat - O2_{m}) - ocr_{m} * Phi_{m}",
        }
    )
    return assignments, odes


_EXTRA_STATES = {
    "gut": [
        State("A_ap", "nmol", "gut: drug in the apical lumen (oral doses)"),
        State("V_ap", "mL", "gut: apical lumen volume, changed only by events", initial="V_ap0"),
        State("B_gut", "dimensionless", "gut: barrier integrity (TEER / teer0_gut)", initial="1"),
    ],
    "liver": [State("M_liver", "nmol", "liver: metabolite formed")],
    "kidney": [State("A_urine", "nmol", "kidney: drug cleared from the channel")],
}


def _observables(m: str) -> list[Observable]:
    obs = [
        Observable(f"drug_{m}", "uM", f"A_{m} / V_ch_{m}", f"{m}: drug concentration in the channel"),
        Observable(f"viability_{m}", "dimensionless", f"Phi_{m}", f"{m}: viable fraction"),
        Observable(f"oxygen_{m}", "percent", f"O2_{m}", f"{m}: dissolved oxygen"),
    ]
    if m == "gut":
        obs += [
            Observable("teer_gut", "ohm*cm^2", "teer0_gut * B_gut", "gut: trans-epithelial resistance"),
            Observable("drug_apical", "uM", "A_ap / V_ap", "gut: drug concentration in the apical lumen"),
        ]
    if m == "liver":
        obs.append(Observable("metabolite_liver", "nmol", "M_liver", "liver: metabolite formed"))
    return obs


def multi_organ_spec(modules: tuple[str, ...] = ALL_MODULES) -> ModelSpec:
    """The body-on-chip spec for a selection of modules (any non-empty subset, any order)."""
    unknown = [m for m in modules if m not in ALL_MODULES]
    if not modules or unknown or len(set(modules)) != len(modules):
        raise InvalidValueError(f"modules {modules!r}: choose a non-empty set, without repeats, of {ALL_MODULES}")
    modules = tuple(m for m in ALL_MODULES if m in modules)  # canonical order
    states = [
        State("A_R", "nmol", "drug in the mixing reservoir"),
        State("V_R", "mL", "reservoir volume, changed only by events", initial="V_R0"),
    ]
    parameters: list[Parameter] = []
    constants = [
        Constant("V_R0", "mL", 0.4, "initial reservoir (mixer) volume"),
        Constant("O2_sat", "percent", 100.0, "oxygen at air saturation"),
        Constant("kla", "1/h", 5.0, "oxygen transfer coefficient"),
    ]
    assignments = {"C_R": "A_R / V_R"}
    odes = {"A_R": " + ".join(f"Q_{m} * (C_{m} - C_R)" for m in modules), "V_R": "0"}
    observables = [Observable("drug_reservoir", "uM", "A_R / V_R", "drug concentration in the reservoir")]
    for m in modules:
        states += _module_states(m) + _EXTRA_STATES.get(m, [])
        parameters += _module_parameters(m) + _extra_parameters(m)
        constants += _module_constants(m)
        module_assignments, module_odes = _module_equations(m)
        assignments.update(module_assignments)
        odes.update(module_odes)
        observables += _observables(m)
    if "gut" in modules:
        constants += [
            Constant("V_ap0", "mL", 0.1, "gut: initial apical lumen volume"),
            Constant("teer0_gut", "ohm*cm^2", 500.0, "gut: TEER of the intact barrier"),
        ]
    name = "multi_organ" if modules == ALL_MODULES else "multi_organ_" + "_".join(modules)
    return ModelSpec(
        name=name,
        version=VERSION,
        description=f"Body-on-chip: reservoir with {', '.join(modules)} modules (Maass 2017 scales).",
        states=tuple(states),
        parameters=tuple(parameters),
        observables=tuple(observables),
        odes=odes,
        constants=tuple(constants),
        assignments=assignments,
    )


def media_of(spec: ModelSpec) -> dict[str, Medium]:
    media = {"reservoir": Medium(amount="A_R", volume="V_R", solutes=("A_R",))}
    if "A_ap" in spec.state_names:
        media["apical"] = Medium(amount="A_ap", volume="V_ap", solutes=("A_ap",))
    return media


def drug_states_of(spec: ModelSpec) -> tuple[str, ...]:
    """Every state holding drug or its fate (metabolised, cleared): their sum is conserved."""
    return tuple(s.name for s in spec.states if s.unit == "nmol")


MULTI_ORGAN = multi_organ_spec()
