"""`chiptwin design`: ranked proposals as JSON for scripts, a table for people, one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from calibration.io.record import Estimate, FitRecord
from ui.cli.app import app

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "design" / "space.toml"
NAMES = ("vmax", "km", "kon", "koff")


@pytest.fixture
def fit_json(tmp_path):
    estimates = {"vmax": 2.0, "km": 10.0, "kon": 0.05, "koff": 0.02}
    theta = {
        n: Estimate(**{"estimate": v, "se": 0.5 * v, "ci95": [v / 2.7, v * 2.7], "rse_percent": 50.0})
        for n, v in estimates.items()
    }
    names = [*NAMES, "drug_medium.prop_cv"]
    matrix = [[1.0 if i == j else 0.0 for j in range(5)] for i in range(5)]
    record = FitRecord(
        "liver_chip",
        "1.0.0",
        "pooled",
        True,
        10.0,
        8,
        2,
        5,
        theta,
        {"drug_medium.prop_cv": 0.15},
        correlation={"names": names, "matrix": matrix},
        data_selection={"fixed": {"ps": 0.5}},
    )
    path = tmp_path / "fit.json"
    path.write_text(record.to_json())
    return path


def test_json_lists_ranked_proposals_with_design_utility_predictions_and_expected_sd(fit_json):
    result = runner.invoke(
        app, ["design", str(fit_json), "--space", str(EXAMPLE), "--top", "3", "--json", "--draws", "2"]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["model"] == "liver_chip" and document["utility_kind"] == "bayesian-d"
    proposals = document["proposals"]
    assert [p["rank"] for p in proposals] == [1, 2, 3]
    assert proposals[0]["utility"] >= proposals[1]["utility"] >= proposals[2]["utility"] > 0
    design = proposals[0]["design"]
    assert {"chip", "dose_um", "schedule", "sample_times_h", "sample_volume_ml", "observables"} <= set(design)
    assert design["chip"] in ("chip-3", "chip-4") and design["dose_um"] <= 200
    band = proposals[0]["predicted"]["drug_medium"]
    assert len(band["mean"]) == len(design["sample_times_h"]) == len(band["p05"]) == len(band["p95"])
    for name in NAMES:
        value = proposals[0]["parameters"][name]
        assert value["expected_sd"] < value["sd"]


def test_table_output(fit_json):
    result = runner.invoke(app, ["design", str(fit_json), "--space", str(EXAMPLE), "--draws", "1", "--top", "2"])
    assert result.exit_code == 0, result.output
    assert "RSE %" in result.stdout and "predicted drug_medium" in result.stdout


def test_user_errors_are_one_line_exit_2(fit_json, tmp_path):
    missing = runner.invoke(app, ["design", str(tmp_path / "nope.json"), "--space", str(EXAMPLE)])
    assert missing.exit_code == 2 and "no such fit file" in missing.output
    tight = tmp_path / "space.toml"
    tight.write_text("[doses]\nlevels_um = [50, 100]\n[constraints]\nmax_concentration_um = 10\n")
    infeasible = runner.invoke(app, ["design", str(fit_json), "--space", str(tight)])
    assert infeasible.exit_code == 2
    assert "max_concentration_um = 10" in infeasible.output and "Traceback" not in infeasible.output
    assert len(infeasible.output.strip().splitlines()) == 1
