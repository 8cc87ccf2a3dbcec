"""``liver_chip`` (MODELS.md §2): the spec, and its hand-written batched numerics.

Units: h, nmol, mL, µM (= nmol/mL), mL/h, % air saturation.

The medium volume ``V_m`` is a *state* with ``V_m' = 0``, not a constant: it is piecewise
constant and only events change it (dose adds, sample removes, media change resets). As a
state it stays in the state vector the events act on, its initial value comes from the
constant ``V_m0``, and the SBML export can make it a non-constant quantity that event
assignments may change (SBML forbids assigning to a constant parameter).
"""

from __future__ import annotations

import numpy as np

from twin.chip.system import ChipSystem, Medium
from twin.model import Constant, ModelSpec, Observable, Parameter, State

VERSION = "1.0.0"
STATES = ("A_m", "A_c", "A_p", "M_m", "Phi", "O2", "V_m")
PARAMS = ("ps", "vmax", "km", "kon", "koff", "kmax", "ec50", "hill", "ocr")
CONSTS = ("V_m0", "V_c", "N_cells", "O2_sat", "kla")
AM, AC, AP, MM, PHI, O2, VM = range(7)
MEDIUM = Medium(amount="A_m", volume="V_m", solutes=("A_m", "M_m"))

_P = Parameter
LIVER_PARAMETERS = (
    _P("ps", "mL/h", 0.5, 1e-4, 1e3, "membrane/cell permeability-surface product"),
    _P("vmax", "nmol/h", 2.0, 1e-4, 1e4, "maximal metabolic rate of the fully viable tissue"),
    _P("km", "uM", 10.0, 1e-3, 1e4, "Michaelis constant (cell concentration)"),
    _P("kon", "1/h", 0.05, 1e-6, 10.0, "uptake rate constant into the chip material (PDMS)"),
    _P("koff", "1/h", 0.02, 1e-6, 10.0, "release rate constant from the chip material (PDMS)"),
    _P("kmax", "1/h", 0.1, 1e-6, 10.0, "maximal kill rate of the cells"),
    _P("ec50", "uM", 50.0, 1e-3, 1e5, "cell concentration at half-maximal kill rate"),
    _P("hill", "dimensionless", 2.0, 0.1, 10.0, "Hill coefficient of the kill rate"),
    _P("ocr", "percent/h", 150.0, 1e-3, 1e4, "oxygen consumption rate of the full viable tissue"),
)
LIVER_CONSTANTS = (
    Constant("V_m0", "mL", 1.0, "initial medium volume (recirculating medium)"),
    Constant("V_c", "mL", 0.0034, "cell volume (1e6 hepatocytes at about 3.4 pL each)"),
    Constant("N_cells", "dimensionless", 1.0, "number of cells, in millions (used by IVIVE)"),
    Constant("O2_sat", "percent", 100.0, "oxygen at air saturation"),
    Constant("kla", "1/h", 5.0, "oxygen transfer coefficient into the medium"),
)

LIVER_CHIP = ModelSpec(
    name="liver_chip",
    version=VERSION,
    description="One recirculating liver chip: medium, cells, PDMS, metabolite, viability, oxygen.",
    states=(
        State("A_m", "nmol", "drug in the medium"),
        State("A_c", "nmol", "drug in the cells"),
        State("A_p", "nmol", "drug absorbed into the chip material (PDMS)"),
        State("M_m", "nmol", "metabolite in the medium"),
        State("Phi", "dimensionless", "viable fraction of the cells (0-1)", initial="1"),
        State("O2", "percent", "dissolved oxygen, % air saturation", initial="O2_sat - ocr / kla"),
        State("V_m", "mL", "medium volume: piecewise constant, changed only by events", initial="V_m0"),
    ),
    parameters=LIVER_PARAMETERS,
    constants=LIVER_CONSTANTS,
    assignments={
        "C_m": "A_m / V_m",
        "C_c": "A_c / V_c",
        "J_perm": "ps * (C_m - C_c)",
        "v_met": "vmax * Phi * C_c / (km + C_c)",
        "kill": "kmax * C_c^hill / (ec50^hill + C_c^hill)",
    },
    odes={
        "A_m": "-J_perm - kon * A_m + koff * A_p",
        "A_c": "J_perm - v_met",
        "A_p": "kon * A_m - koff * A_p",
        "M_m": "v_met",
        "Phi": "-kill * Phi",
        "O2": "kla * (O2_sat - O2) - ocr * Phi",
        "V_m": "0",
    },
    observables=(
        Observable("drug_medium", "uM", "A_m / V_m", "drug concentration in the medium (offline samples)"),
        Observable("metabolite_medium", "uM", "M_m / V_m", "metabolite concentration in the medium"),
        Observable("oxygen", "percent", "O2", "dissolved oxygen (online sensor)"),
        Observable("viability", "dimensionless", "Phi", "viable fraction (endpoint assay)"),
    ),
)


def _terms(x: np.ndarray, p: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
    """The model's intermediate quantities, shared by rhs, Jacobian and ∂f/∂p."""
    ps, vmax, km, kon, koff, kmax, ec50, hill, ocr = p.T
    vc = c[:, 1]
    cm = x[:, AM] / x[:, VM]
    cc = x[:, AC] / vc
    # C_c^hill is undefined below zero for non-integer hill; the solver can dip a rounding
    # error below zero, so the Hill term reads max(C_c, 0) (identical on the model's domain).
    cc_pos = np.maximum(cc, 0.0)
    hn = cc_pos**hill
    e = ec50**hill
    frac = hn / (e + hn)
    return dict(
        ps=ps,
        vmax=vmax,
        km=km,
        kon=kon,
        koff=koff,
        kmax=kmax,
        ec50=ec50,
        hill=hill,
        ocr=ocr,
        vc=vc,
        cm=cm,
        cc=cc,
        cc_pos=cc_pos,
        hn=hn,
        e=e,
        frac=frac,
        sat=cc / (km + cc),
    )


def rhs(x: np.ndarray, p: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The right-hand side, batched; lean (the hot loop of every solver calls it on complex steps too)."""
    ps, vmax, km, kon, koff, kmax, ec50, hill, ocr = p.T
    a_m, a_c, a_p, phi, o2 = x[:, AM], x[:, AC], x[:, AP], x[:, PHI], x[:, O2]
    cc = a_c / c[:, 1]
    flux = ps * (a_m / x[:, VM] - cc)
    v = vmax * phi * cc / (km + cc)
    hn = np.maximum(cc, 0.0) ** hill  # see the clipping note in _terms
    uptake = kon * a_m - koff * a_p
    dx = np.empty_like(x)
    dx[:, AM] = -flux - uptake
    dx[:, AC] = flux - v
    dx[:, AP] = uptake
    dx[:, MM] = v
    dx[:, PHI] = -kmax * hn / (ec50**hill + hn) * phi
    dx[:, O2] = c[:, 4] * (c[:, 3] - o2) - ocr * phi
    dx[:, VM] = 0.0
    return dx


def rhs_one(x: np.ndarray, p: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``rhs`` for one chip in plain floats (the same equations; ~10× less overhead per call)."""
    a_m, a_c, a_p, _, phi, o2, v_m = x.tolist()
    ps, vmax, km, kon, koff, kmax, ec50, hill, ocr = p.tolist()
    _, v_c, _, o2_sat, kla = c.tolist()
    c_m, c_c = a_m / v_m, a_c / v_c
    flux = ps * (c_m - c_c)
    v = vmax * phi * c_c / (km + c_c)
    hn = max(c_c, 0.0) ** hill
    kill = kmax * hn / (ec50**hill + hn)
    return np.array(
        [
            -flux - kon * a_m + koff * a_p,
            flux - v,
            kon * a_m - koff * a_p,
            v,
            -kill * phi,
            kla * (o2_sat - o2) - ocr * phi,
            0.0,
        ]
    )


def _dkill_dcc(t: dict[str, np.ndarray]) -> np.ndarray:
    """∂(kmax·C^h/(e + C^h))/∂C, zero where C ≤ 0 (see the clipping note in _terms)."""
    safe = np.where(t["cc_pos"] > 0, t["cc_pos"], 1.0)
    d = t["kmax"] * t["e"] * t["hill"] * safe ** (t["hill"] - 1.0) / (t["e"] + t["hn"]) ** 2
    return np.where(t["cc_pos"] > 0, d, 0.0)


def jac(x: np.ndarray, p: np.ndarray, c: np.ndarray) -> np.ndarray:
    t = _terms(x, p, c)
    ps, vm, vc = t["ps"], x[:, VM], t["vc"]
    dv_dac = t["vmax"] * x[:, PHI] * t["km"] / (t["km"] + t["cc"]) ** 2 / vc
    dv_dphi = t["vmax"] * t["sat"]
    dflux_dvm = -ps * x[:, AM] / vm**2
    j = np.zeros((x.shape[0], 7, 7))
    j[:, AM, AM] = -ps / vm - t["kon"]
    j[:, AM, AC] = ps / vc
    j[:, AM, AP] = t["koff"]
    j[:, AM, VM] = -dflux_dvm
    j[:, AC, AM] = ps / vm
    j[:, AC, AC] = -ps / vc - dv_dac
    j[:, AC, PHI] = -dv_dphi
    j[:, AC, VM] = dflux_dvm
    j[:, AP, AM] = t["kon"]
    j[:, AP, AP] = -t["koff"]
    j[:, MM, AC] = dv_dac
    j[:, MM, PHI] = dv_dphi
    j[:, PHI, AC] = -_dkill_dcc(t) / vc * x[:, PHI]
    j[:, PHI, PHI] = -t["kmax"] * t["frac"]
    j[:, O2, PHI] = -t["ocr"]
    j[:, O2, O2] = -c[:, 4]
    return j


def dfdp(x: np.ndarray, p: np.ndarray, c: np.ndarray) -> np.ndarray:
    """∂f/∂p (not log-p), columns in PARAMS order."""
    t = _terms(x, p, c)
    phi = x[:, PHI]
    d = np.zeros((x.shape[0], 7, 9))
    grad = t["cm"] - t["cc"]  # ∂flux/∂ps
    d[:, AM, 0], d[:, AC, 0] = -grad, grad
    dv_dvmax = phi * t["sat"]
    d[:, AC, 1], d[:, MM, 1] = -dv_dvmax, dv_dvmax
    dv_dkm = -t["vmax"] * phi * t["cc"] / (t["km"] + t["cc"]) ** 2
    d[:, AC, 2], d[:, MM, 2] = -dv_dkm, dv_dkm
    d[:, AM, 3], d[:, AP, 3] = -x[:, AM], x[:, AM]
    d[:, AM, 4], d[:, AP, 4] = x[:, AP], -x[:, AP]
    d[:, PHI, 5] = -t["frac"] * phi
    denom = (t["e"] + t["hn"]) ** 2
    d[:, PHI, 6] = t["kmax"] * t["hn"] * t["hill"] * t["ec50"] ** (t["hill"] - 1.0) / denom * phi
    log_ratio = np.log(np.where(t["cc_pos"] > 0, t["cc_pos"], 1.0) / t["ec50"])
    dkill_dhill = np.where(t["cc_pos"] > 0, t["kmax"] * t["hn"] * t["e"] * log_ratio / denom, 0.0)
    d[:, PHI, 7] = -dkill_dhill * phi
    d[:, O2, 8] = -phi
    return d


def initial(p: np.ndarray, c: np.ndarray) -> np.ndarray:
    x = np.zeros((p.shape[0], 7))
    x[:, PHI] = 1.0
    x[:, O2] = c[:, 3] - p[:, 8] / c[:, 4]
    x[:, VM] = c[:, 0]
    return x


def dinitial_dp(p: np.ndarray, c: np.ndarray) -> np.ndarray:
    d = np.zeros((p.shape[0], 7, 9))
    d[:, O2, 8] = -1.0 / c[:, 4]
    return d


def observe(x: np.ndarray, p: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "drug_medium": x[:, AM] / x[:, VM],
        "metabolite_medium": x[:, MM] / x[:, VM],
        "oxygen": x[:, O2].copy(),
        "viability": x[:, PHI].copy(),
    }


def dobs_dx(x: np.ndarray, p: np.ndarray, c: np.ndarray) -> dict[str, np.ndarray]:
    grads = {name: np.zeros_like(x) for name in ("drug_medium", "metabolite_medium", "oxygen", "viability")}
    vm = x[:, VM]
    grads["drug_medium"][:, AM], grads["drug_medium"][:, VM] = 1.0 / vm, -x[:, AM] / vm**2
    grads["metabolite_medium"][:, MM], grads["metabolite_medium"][:, VM] = 1.0 / vm, -x[:, MM] / vm**2
    grads["oxygen"][:, O2] = 1.0
    grads["viability"][:, PHI] = 1.0
    return grads


LIVER_SYSTEM = ChipSystem(
    spec=LIVER_CHIP,
    media={"medium": MEDIUM},
    rhs=rhs,
    rhs_one=rhs_one,
    jac=jac,
    dfdp=dfdp,
    initial=initial,
    dinitial_dp=dinitial_dp,
    observe=observe,
    dobs_dx=dobs_dx,
    drug_states=("A_m", "A_c", "A_p", "M_m"),
)
