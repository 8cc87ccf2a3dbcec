"""`chiptwin dose` for a patient (MAP from levels) and a chip (from a fit record), and its refusals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ui.cli.app import app

runner = CliRunner()
PATIENT = 'age = "54 years"\nsex = "female"\nweight = "72 kg"\nserum_creatinine = "0.9 mg/dL"\n'


@pytest.fixture
def files(tmp_path):
    patient = tmp_path / "patient.toml"
    patient.write_text(PATIENT, encoding="utf-8")
    rows = [dict(ID=1, TIME=12.0 * k, AMT=100, EVID=1, CMT=1, DV=".", MDV=1) for k in range(6)]
    rows += [
        dict(ID=1, TIME=t, AMT=0, EVID=0, CMT=2, DV=c, MDV=0)
        for t, c in ((2, 0.14), (11.5, 0.02), (62, 0.15), (71.5, 0.025))
    ]
    levels = tmp_path / "levels.csv"
    pd.DataFrame(rows).sort_values(["TIME", "EVID"], ascending=[True, False]).to_csv(levels, index=False)
    fit = tmp_path / "fit.json"
    fit.write_text(
        json.dumps(
            {
                "model": "liver_chip",
                "method": "individual",
                "correlation": {},
                "theta": {
                    n: {"estimate": v, "ci95": [v / 1.2, v * 1.2]}
                    for n, v in {"ps": 0.5, "vmax": 2.0, "km": 10.0, "kon": 0.05, "koff": 0.02}.items()
                },
            }
        ),
        encoding="utf-8",
    )
    return patient, levels, fit


def test_patient_regimen_json(files):
    patient, levels, _ = files
    result = runner.invoke(
        app,
        [
            "dose",
            "--patient",
            str(patient),
            "--drug",
            "metoprolol",
            "--levels",
            str(levels),
            "--target",
            "auc=0.4:0.8",
            "--strengths",
            "50,100,200",
            "--intervals",
            "8,12,24",
            "--samples",
            "500",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["target"] == {"metric": "auc", "low": 0.4, "high": 0.8, "unit": "mg·h/L"}
    assert plan["best"]["pta"] == max(c["pta"] for c in plan["candidates"]) and len(plan["candidates"]) == 9
    assert {"cl", "v", "ka"} <= set(plan["posterior"]) and "prior_median" in plan["posterior"]["cl"]


def test_patient_table_and_infeasible_target(files):
    patient, levels, _ = files
    common = ["dose", "--patient", str(patient), "--drug", "metoprolol", "--levels", str(levels), "--samples", "300"]
    shown = runner.invoke(app, [*common, "--target", "auc=0.4:0.8"])
    assert shown.exit_code == 0 and "best:" in shown.stdout
    refused = runner.invoke(app, [*common, "--target", "auc=40:60", "--strengths", "50,100,200"])
    assert refused.exit_code == 2
    assert "no candidate reaches auc 40–60" in refused.output and "widen the window" in refused.output
    missing = runner.invoke(app, ["dose", "--target", "auc=40:60"])
    assert missing.exit_code == 2 and "--patient, --drug, --levels" in missing.output


def test_chip_dose_json(files):
    *_, fit = files
    result = runner.invoke(
        app,
        ["dose", "--chip", "--fit", str(fit), "--target", "conc=5:15", "--over", "0:24", "--samples", "30", "--json"],
    )
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert 5 <= plan["best"]["median"] <= 15 and plan["unit"] == "µM"
    bad = runner.invoke(app, ["dose", "--chip", "--fit", str(fit), "--target", "auc=5:15"])
    assert bad.exit_code == 2 and "METRIC=LOW:HIGH" in bad.output
    assert "dose" in runner.invoke(app, ["--help"]).stdout
    assert np.isfinite(plan["best"]["pta"])
