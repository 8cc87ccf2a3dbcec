"""The twin, interactive: body-on-chip simulation, one patient's prediction, a virtual population.

Pure functions from plain inputs to frames and results, so the pages only lay out widgets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pandas as pd

from twin.chip import Dose, multi_organ_spec, simulate_chip
from twin.chip.multi_organ import CELL_ML, CHANNEL_ML, CHIP_FLOW_ML_H, FLOW_FRACTION
from twin.drugs import known_drugs, load_drug, load_inhibitor
from twin.errors import TwinError
from twin.patients import Prediction, parse_regimen, parse_target, patient_from_dict, predict
from twin.patients.runner import PopulationSummary, run_population
from twin.patients.summaries import BINS, LOG10_HIGH, LOG10_LOW
from ui.panel import validators

# ---------------------------------------------------------------- body-on-chip


@dataclass(frozen=True)
class ModuleSetting:
    flow_ml_h: float
    channel_ml: float
    cell_ml: float


def default_module(module: str) -> ModuleSetting:
    return ModuleSetting(FLOW_FRACTION[module] * CHIP_FLOW_ML_H, CHANNEL_ML[module], CELL_ML[module])


@dataclass
class BodyOnChipRun:
    concentrations: pd.DataFrame  # time_h, series, value (µM)
    readouts: pd.DataFrame  # time_h, series, value (viability fraction, oxygen %)
    teer: pd.DataFrame  # time_h, series, value (Ω·cm²); empty without a gut
    final: dict[str, float] = field(default_factory=dict)


def _long(time_h: np.ndarray, series: dict[str, np.ndarray]) -> pd.DataFrame:
    parts = [pd.DataFrame({"time_h": time_h, "series": name, "value": values}) for name, values in series.items()]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["time_h", "series", "value"])


def simulate_body_on_chip(
    modules: tuple[str, ...],
    settings: dict[str, ModuleSetting],
    reservoir_ml: float,
    dose_nmol: float,
    dose_into: str,
    hours: float,
    n_points: int = 241,
) -> BodyOnChipRun:
    """One dose at t = 0 into the reservoir or the gut's apical lumen; every compartment and readout."""
    spec = multi_organ_spec(tuple(modules))
    constants = {"V_R0": reservoir_ml}
    for m in modules:
        s = settings.get(m, default_module(m))
        constants.update({f"Q_{m}": s.flow_ml_h, f"V_ch_{m}": s.channel_ml, f"V_cell_{m}": s.cell_ml})
    medium = "apical" if dose_into == "apical" and "gut" in modules else "reservoir"
    times = np.linspace(0.0, hours, n_points)
    result = simulate_chip(
        None, [Dose(0.0, dose_nmol, 0.0, medium=medium)], times, constants=constants, model=spec, return_states=True
    )
    conc = {"reservoir": result["drug_reservoir"]}
    if "gut" in modules:
        conc["gut lumen (apical)"] = result["drug_apical"]
    for m in modules:
        conc[f"{m} channel"] = result[f"drug_{m}"]
        conc[f"{m} cells"] = result[f"A_c_{m}"] / constants[f"V_cell_{m}"]
    readouts = {f"{m} viability (%)": 100 * result[f"viability_{m}"] for m in modules}
    readouts.update({f"{m} oxygen (%)": result[f"oxygen_{m}"] for m in modules})
    teer = {"gut TEER": result["teer_gut"]} if "gut" in modules else {}
    final = {name: float(values[-1]) for name, values in {**conc, **readouts}.items()}
    return BodyOnChipRun(_long(times, conc), _long(times, readouts), _long(times, teer), final)


# ---------------------------------------------------------------- one patient


@cache
def patient_drugs() -> tuple[str, ...]:
    """Library drugs that can be dosed (inhibitor-only entries are left out)."""
    return tuple(d for d in known_drugs() if _loads(load_drug, d))


@cache
def inhibitors() -> tuple[str, ...]:
    return tuple(d for d in known_drugs() if _loads(load_inhibitor, d))


def _loads(loader, name: str) -> bool:
    try:
        loader(name)
        return True
    except TwinError:
        return False


@dataclass(frozen=True)
class PatientInputs:
    age_years: float
    sex: str
    weight_kg: float
    scr_mg_per_dl: float
    genotypes: dict[str, str] = field(default_factory=dict)  # gene → "*1/*4"; blank entries ignored
    comedication: str = ""  # inhibitor name, or "" for none
    comedication_unbound_um: float = 0.0


def patient_document(inputs: PatientInputs) -> dict:
    document = {
        "age": f"{inputs.age_years} years",
        "sex": inputs.sex,
        "weight": f"{inputs.weight_kg} kg",
        "serum_creatinine": f"{inputs.scr_mg_per_dl} mg/dL",
        "genotype": {g: t.strip() for g, t in inputs.genotypes.items() if t and t.strip()},
    }
    if inputs.comedication:
        document["comedication"] = [
            {"drug": inputs.comedication, "unbound_concentration": f"{inputs.comedication_unbound_um} µM"}
        ]
    return document


def target_of(metric: str, text: str):
    """'auc_tau_ss' or 'ctrough_ss' with 'LOW:HIGH' or 'X' (80–125 %); blank → no target."""
    text = validators.target_window(text)
    return parse_target(metric, text) if text else None


def regimen_of(text: str):
    return parse_regimen(validators.required_text("regimen", text, "100 mg q12h x14 oral"))


def predict_patient(
    drug: str, inputs: PatientInputs, regimen: str, metric: str = "auc_tau_ss", target: str = "", strengths_mg: str = ""
) -> Prediction:
    """Every typed field is checked (``validators``) before the twin sees it."""
    strengths = validators.strengths_mg(strengths_mg)
    return predict(
        load_drug(drug),
        patient_from_dict(patient_document(inputs), "patient"),
        regimen_of(regimen),
        target_of(metric, target),
        strengths,
    )


def prediction_table(prediction: Prediction) -> pd.DataFrame:
    return pd.DataFrame([{"quantity": k, "value": v, "unit": u} for k, (v, u) in prediction.table().items()])


# ---------------------------------------------------------------- virtual population


def simulate_population(
    drug: str,
    regimen: str,
    n: int,
    seed: int = 0,
    metric: str = "auc_tau_ss",
    target: str = "",
    workers: int = 1,
    progress=None,
) -> PopulationSummary:
    """N virtual patients, in this process by default (the panel's server has the cores it has)."""
    return run_population(
        load_drug(drug),
        regimen_of(regimen),
        n,
        seed=seed,
        target=target_of(metric, target),
        max_workers=workers,
        progress=progress,
    )


def population_table(summary: PopulationSummary) -> pd.DataFrame:
    rows = [{"metric": name, **s.describe()} for name, s in sorted(summary.accumulator.summaries.items())]
    return pd.DataFrame(rows, columns=["metric", "p5", "p50", "p95", "mean", "min", "max"])


def distribution(summary: PopulationSummary, metric: str, n_bins: int = 60) -> pd.DataFrame:
    """The streaming histogram of ``metric`` regrouped into ≤ ``n_bins`` log-spaced display bins."""
    counts = summary.accumulator.summaries[metric].counts[1:-1]
    used = np.flatnonzero(counts)
    if used.size == 0:
        return pd.DataFrame(columns=["low", "high", "fraction"])
    edges = np.linspace(used[0], used[-1] + 1, min(n_bins, used[-1] + 1 - used[0]) + 1).round().astype(int)
    width = (LOG10_HIGH - LOG10_LOW) / BINS
    grouped = np.add.reduceat(counts, edges[:-1])
    low = 10 ** (LOG10_LOW + edges[:-1] * width)
    high = 10 ** (LOG10_LOW + edges[1:] * width)
    return pd.DataFrame({"low": low, "high": high, "fraction": grouped / summary.n})
