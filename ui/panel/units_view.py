"""Units on what the panel shows: parameter and population tables with a unit column, axis labels,
the exposure metrics' units, and the correlation warnings of a fit (|r| ≥ 0.95).

Every unit goes through ``ui.unit_text.pretty_unit`` (Ω·cm², µM), the one helper for display text.
"""

from __future__ import annotations

import math

import pandas as pd
from sqlalchemy import Engine

from store.repositories import fits as fit_records
from twin.errors import TwinError
from ui.unit_text import DIMENSIONLESS, pretty_unit

HIGH_CORRELATION = 0.95  # |r| at which two estimates cannot be told apart by these data
_EXPOSURE_UNITS = {
    "auc": "mg*h/L",
    "c": "mg/L",
    "cl_l_per_h": "L/h",
    "crcl_ml_per_min": "mL/min",
    "f_oral": "1",
    "toxicity_margin": "1",
}


def _spec(model: str):
    from twin.catalogue import get_model  # the catalogue loads every model: only on pages that show a fit

    try:
        return get_model(model)
    except TwinError:
        return None


def parameter_units(model: str) -> dict[str, str]:
    """θ name → display unit (empty where the catalogue has no such model)."""
    spec = _spec(model)
    return {} if spec is None else {p.name: pretty_unit(p.unit) for p in spec.parameters}


def observable_units(model: str) -> dict[str, str]:
    spec = _spec(model)
    return {} if spec is None else {o.name: pretty_unit(o.unit) for o in spec.observables}


def _row_unit(kind: str, name: str, thetas: dict[str, str], observables: dict[str, str]) -> str:
    if kind == "θ":
        return thetas.get(name, "?")
    if kind == "σ":  # "drug_medium.add_sd" is in the observable's unit; a proportional CV is a ratio
        observable, _, part = name.rpartition(".")
        return observables.get(observable, "?") if part.startswith("add") else DIMENSIONLESS
    return DIMENSIONLESS  # ω: SD of a log parameter


def with_units(table: pd.DataFrame, model: str) -> pd.DataFrame:
    """``review.parameter_table`` with a unit column after the estimate (its SE and interval share it)."""
    thetas, observables = parameter_units(model), observable_units(model)
    units = [_row_unit(k, n, thetas, observables) for k, n in zip(table["kind"], table["parameter"])]
    result = table.copy()
    result.insert(list(table.columns).index("estimate") + 1, "unit", units)
    return result


def model_of_fit(engine: Engine, fit_id: float | int | None) -> str:
    """The model of a fit ("" for none: a proposal's fit id may be missing, NaN in a frame)."""
    if fit_id is None or pd.isna(fit_id):
        return ""
    fit = fit_records.get(engine, int(fit_id))
    return "" if fit is None else fit.model


def with_parameter_units(table: pd.DataFrame, model: str) -> pd.DataFrame:
    """A table with a "parameter" and an "estimate" column, given a unit column after the estimate."""
    thetas = parameter_units(model)
    result = table.copy()
    result.insert(list(table.columns).index("estimate") + 1, "unit", [thetas.get(n, "?") for n in table["parameter"]])
    return result


def exposure_unit(metric: str) -> str:
    """Unit of an exposure metric of the patient twin (auc_* in mg·h/L, c* in mg/L, …)."""
    if metric in _EXPOSURE_UNITS:
        return pretty_unit(_EXPOSURE_UNITS[metric])
    return pretty_unit(_EXPOSURE_UNITS["auc" if metric.startswith("auc") else "c"])


def population_with_units(table: pd.DataFrame) -> pd.DataFrame:
    result = table.copy()
    result.insert(1, "unit", [exposure_unit(m) for m in table["metric"]])
    return result


def target_text(metric: str, low: float, high: float) -> str:
    return f"target window of {metric}: {low:.4g}–{high:.4g} {exposure_unit(metric)}"


def high_correlations(
    names: list[str], matrix: list[list[float]] | None, threshold: float = HIGH_CORRELATION
) -> list[str]:
    """A warning per pair of estimates correlated at |r| ≥ threshold, strongest first."""
    if not matrix:
        return []
    pairs = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            r = matrix[i][j]
            if r is not None and not math.isnan(r) and abs(r) >= threshold:
                pairs.append((abs(r), names[i], names[j], r))
    return [
        f"{a} and {b} are correlated at r = {r:+.2f} (|r| ≥ {threshold:.2f}): these data cannot tell them "
        "apart; trust their combination more than either, or design an experiment that separates them"
        for _, a, b, r in sorted(pairs, reverse=True)
    ]


def prediction_with_units(table: pd.DataFrame) -> pd.DataFrame:
    """The predictor's (quantity, value, unit) table, its units as display text ("" is a ratio: "1")."""
    return table.assign(unit=table["unit"].map(pretty_unit))


def readings_with_units(table: pd.DataFrame) -> pd.DataFrame:
    """Latest readings with the channel units as display text ("ohm*cm^2" → "Ω·cm²")."""
    return table.assign(unit=table["unit"].map(pretty_unit))


def final_values(final: dict[str, float]) -> pd.DataFrame:
    """The body-on-chip simulation's end values: readouts named "… (%)" are percent, the rest µM."""
    return pd.DataFrame(
        {
            "at the end": list(final),
            "value": list(final.values()),
            "unit": [pretty_unit("percent") if n.endswith("(%)") else pretty_unit("uM") for n in final],
        }
    )
