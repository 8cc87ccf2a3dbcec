"""`chiptwin patient update`: the table per level, JSON, and a target no regimen reaches (exit 2)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tests.calibration.test_tdm import PATIENT, TIMES_H, write_levels
from ui.cli.app import app


def test_cli_patient_update(tmp_path):
    write_levels(tmp_path / "levels.csv", times_h=TIMES_H[:4])
    runner = CliRunner()
    args = ["patient", "update", str(PATIENT), "--drug", "metoprolol", "--data", str(tmp_path / "levels.csv")]
    result = runner.invoke(app, [*args, "--target", "auc=0.8:1.2", "--samples", "300", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert len(document["steps"]) == 5 and document["regimen"]["next_dose_h"] == 96.0
    assert document["plan"]["best"]["dose"] == 200.0 and document["steps"][-1]["proposal"] == "200 mg q12h"
    shown = runner.invoke(app, [*args, "--samples", "300"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "next trough" in shown.stdout and "prior" in shown.stdout
    refused = runner.invoke(app, [*args, "--target", "auc=40:60", "--samples", "300"])
    assert refused.exit_code == 2 and "no candidate reaches auc 40–60" in refused.stderr
