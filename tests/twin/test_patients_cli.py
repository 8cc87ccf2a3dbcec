"""`predict` and `population` on a Typer app built here (ui.cli.app calls the same `register`)."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from ui.cli.app import app as chiptwin

PATIENT = """age = "54 years"
sex = "female"
weight = "72 kg"
serum_creatinine = "0.9 mg/dL"
[genotype]
CYP2D6 = "*4/*4"
"""


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    return chiptwin  # the real command line: user errors are mapped where users meet them


@pytest.fixture
def patient_file(tmp_path):
    path = tmp_path / "patient.toml"
    path.write_text(PATIENT)
    return str(path)


def test_predict_json_with_a_recommendation(app, patient_file):
    result = CliRunner().invoke(
        app,
        [
            "predict",
            "--patient",
            patient_file,
            "--drug",
            "metoprolol",
            "--regimen",
            "100 mg q12h x14 oral",
            "--target-auc",
            "2:4",
            "--strengths",
            "25,50",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["values"]["auc_tau_ss"]["unit"] == "mg·h/L"
    assert out["recommendation"]["dose_mg"] in {25, 50, 75, 100, 125, 150, 175, 200}


def test_predict_table(app, patient_file):
    result = CliRunner().invoke(
        app,
        [
            "predict",
            "--patient",
            patient_file,
            "--drug",
            "example_chip_compound",
            "--regimen",
            "100 mg q12h x14 oral",
            "--target-trough",
            "0.001",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "toxicity margin" in result.stdout and "recommended dose" in result.stdout


def test_population_json(app):
    result = CliRunner().invoke(
        app,
        [
            "population",
            "--drug",
            "omeprazole",
            "--n",
            "2000",
            "--regimen",
            "20 mg q24h x7 oral",
            "--seed",
            "3",
            "--workers",
            "1",
            "--target-auc",
            "0.5:3",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["n"] == 2000 and "probability_of_target_attainment" in out["target"]


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["predict", "--patient", "PATIENT", "--drug", "aspirin", "--regimen", "1 mg q1h x1 iv"],
            "unknown drug 'aspirin'",
        ),
        (["predict", "--patient", "PATIENT", "--drug", "midazolam", "--regimen", "lots"], "cannot read regimen"),
        (
            ["predict", "--patient", "/nonexistent.toml", "--drug", "midazolam", "--regimen", "1 mg q1h x1 iv"],
            "does not exist",
        ),
        (
            [
                "population",
                "--drug",
                "midazolam",
                "--n",
                "10",
                "--regimen",
                "1 mg q1h x1 iv",
                "--target-auc",
                "1",
                "--target-trough",
                "1",
            ],
            "not both",
        ),
    ],
)
def test_user_errors_are_one_line_and_exit_2(app, patient_file, args, message):
    args = [patient_file if a == "PATIENT" else a for a in args]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
