"""A proposal's predicted outcome, why it was chosen and its safety checks, as tables for the page.

The propose step stores ``predicted_json`` as ``{"chips": {chip: {"observables": {observable:
{time_h, mean, p05, p95}}, "parameters": {name: {estimate, rse_percent, expected_rse_percent, …}}}},
"checks": [{chip, check, value, limit, ok}]}``. Anything else (an older or hand-made proposal)
yields empty tables, and the page shows the raw document instead.
"""

from __future__ import annotations

import json

import pandas as pd

BAND_COLUMNS = ["chip", "observable", "time_h", "mean", "p05", "p95"]
PARAMETER_COLUMNS = ["chip", "parameter", "estimate", "rse now %", "rse expected %"]
CHECK_COLUMNS = ["chip", "check", "value", "limit", "ok"]


def _document(predicted_json: str | None) -> dict:
    try:
        document = json.loads(predicted_json or "{}")
    except json.JSONDecodeError:
        return {}
    return document if isinstance(document, dict) else {}


def bands(predicted_json: str | None) -> pd.DataFrame:
    rows = []
    for chip, entry in (_document(predicted_json).get("chips") or {}).items():
        for observable, series in (entry.get("observables") or {}).items():
            for k, t_h in enumerate(series.get("time_h") or []):
                rows.append(
                    {
                        "chip": chip,
                        "observable": observable,
                        "time_h": t_h,
                        "mean": series["mean"][k],
                        "p05": series["p05"][k],
                        "p95": series["p95"][k],
                    }
                )
    return pd.DataFrame(rows, columns=BAND_COLUMNS)


def parameters(predicted_json: str | None) -> pd.DataFrame:
    """What the experiment is expected to teach: each parameter's RSE now and after it."""
    rows = []
    for chip, entry in (_document(predicted_json).get("chips") or {}).items():
        for name, p in (entry.get("parameters") or {}).items():
            rows.append(
                {
                    "chip": chip,
                    "parameter": name,
                    "estimate": p.get("estimate"),
                    "rse now %": p.get("rse_percent"),
                    "rse expected %": p.get("expected_rse_percent"),
                }
            )
    return pd.DataFrame(rows, columns=PARAMETER_COLUMNS)


def checks(predicted_json: str | None) -> pd.DataFrame:
    return pd.DataFrame(_document(predicted_json).get("checks") or [], columns=CHECK_COLUMNS)
