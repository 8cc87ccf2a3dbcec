"""`chiptwin fit` as a scientist uses it: JSON for scripts, warnings in plain sight, clear refusals."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ui.cli.app import app

runner = CliRunner()
TIMES_H = [0.5, 1, 2, 4, 6, 8, 12, 24]


@pytest.fixture
def dataset(tmp_path):
    rng = np.random.default_rng(1)
    rows = []
    for subject in range(1, 7):
        cl, v, ka = 3 * np.exp(0.2 * rng.standard_normal()), 30 * np.exp(0.2 * rng.standard_normal()), 1.2
        rows.append(dict(ID=subject, TIME=0, AMT=100, EVID=1, CMT=1, DV=".", MDV=1, LLOQ=0.05))
        for t in TIMES_H:
            k = cl / v
            c = 100 * ka / (v * (ka - k)) * (np.exp(-k * t) - np.exp(-ka * t))
            rows.append(
                dict(
                    ID=subject, TIME=t, AMT=0, EVID=0, CMT=2, DV=c * (1 + 0.1 * rng.standard_normal()), MDV=0, LLOQ=0.05
                )
            )
    path = tmp_path / "pk.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_population_fit_json_has_the_documented_fields(dataset):
    result = runner.invoke(app, ["fit", str(dataset), "-m", "oral_1cpt", "--population", "--random", "cl,v", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["method"] == "population-foce-i" and record["model"] == "oral_1cpt"
    assert set(record["omega"]) == {"cl", "v"} and set(record["theta"]) == {"ka", "cl", "v"}
    assert record["theta"]["cl"]["ci95"][0] < 3.0 < record["theta"]["cl"]["ci95"][1]
    assert record["minus2ll_with_constant"] == pytest.approx(record["minus2ll"] + 48 * np.log(2 * np.pi))
    assert len(record["individual"]) == 6
    assert record["data_selection"]["blq_method"].startswith("M1")


def test_fixing_a_parameter_and_the_bound_warning_is_printed(dataset, tmp_path):
    out = tmp_path / "fit.json"
    result = runner.invoke(
        app,
        [
            "fit",
            str(dataset),
            "-m",
            "oral_1cpt",
            "--pooled",
            "--estimate",
            "ka,cl",
            "--fix",
            "v=300",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert set(saved["theta"]) == {"ka", "cl"}
    assert "−2LL" in result.stdout and "AIC" in result.stdout


def test_all_observations_below_lloq_is_a_clear_error(dataset, tmp_path):
    frame = pd.read_csv(dataset)
    frame["LLOQ"] = 1e6
    path = tmp_path / "blq.csv"
    frame.to_csv(path, index=False)
    result = runner.invoke(app, ["fit", str(path), "-m", "oral_1cpt"])
    assert result.exit_code == 2
    assert "all of them are below the LLOQ" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--estimate", "ka,cl,foo"], "has no parameter foo"),
        (["--individual", "--pooled"], "choose one of"),
        (["--fix", "v=lots"], "write name=number"),
        (["--error", "huge"], "unknown error model"),
        (["--workers", "2"], "there is one start; fix: add --starts N"),
    ],
)
def test_bad_requests_name_the_fix(dataset, args, message):
    result = runner.invoke(app, ["fit", str(dataset), "-m", "oral_1cpt", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_a_lab_dataset_is_detected_and_fitted_per_chip(tmp_path):
    from calibration.design.insilico import Experiment, lab_rows, write_lab_dataset

    truth = {"ps": 0.5, "vmax": 2.0, "km": 10.0, "kon": 0.05, "koff": 0.02}
    rows = lab_rows(
        "chip-A", Experiment(60.0, (0.5, 1, 2, 4, 8, 12, 24, 36, 48)), truth, 0.05, np.random.default_rng(3)
    )
    path = write_lab_dataset(rows, tmp_path / "lab.csv")
    result = runner.invoke(
        app,
        ["fit", str(path), "-m", "liver_chip", "--estimate", "vmax,km", "--fix", "ps=0.5,kon=0.05,koff=0.02", "--json"],
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["method"] == "individual" and "chip-A" in record["individual"]
    assert record["theta"]["vmax"]["ci95"][0] < 2.0 < record["theta"]["vmax"]["ci95"][1]


def test_a_chip_population_fit_refuses_starts_it_would_ignore(tmp_path):
    from calibration.design.insilico import Experiment, lab_rows, write_lab_dataset

    truth = {"ps": 0.5, "vmax": 2.0, "km": 10.0, "kon": 0.05, "koff": 0.02}
    rng = np.random.default_rng(5)
    rows = [r for chip in ("chip-A", "chip-B") for r in lab_rows(chip, Experiment(60.0, (1, 4, 24)), truth, 0.05, rng)]
    path = write_lab_dataset(rows, tmp_path / "lab.csv")
    result = runner.invoke(app, ["fit", str(path), "-m", "liver_chip", "--population", "--starts", "3"])
    assert result.exit_code == 2, result.output
    assert "has no start loop; fix: drop --starts" in result.output and "Traceback" not in result.output
