"""A fit that fails ends in one line and exit 2, never a traceback or a table of unusable numbers:
the README tour's phenobarbital fit without starting values (it did not converge), and a singular
matrix from deep inside an estimator (numpy's LinAlgError)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from calibration.estimate import nonmem_fit
from ui.cli.app import app

PHENO = Path(__file__).resolve().parents[2] / "examples" / "pk" / "pheno_sd.csv"
runner = CliRunner()


def _one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_a_fit_that_does_not_converge_is_one_line_and_exit_2(tmp_path):
    out = tmp_path / "fit.json"
    result = runner.invoke(
        app, ["fit", str(PHENO), "-m", "iv_1cpt", "--population", "--random", "cl,v", "--out", str(out)]
    )
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert "did not converge" in line and "--init" in line and str(out) in line
    assert not result.stdout.strip()  # no table of estimates nobody should use
    assert json.loads(out.read_text())["converged"] is False  # kept for whoever wants to look


def test_the_same_fit_from_starting_values_near_the_data_converges():
    result = runner.invoke(
        app,
        [
            "fit",
            str(PHENO),
            "-m",
            "iv_1cpt",
            "--population",
            "--random",
            "cl,v",
            "--init",
            "cl=0.01",
            "--init",
            "v=1",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["converged"] and 0.001 < record["theta"]["cl"]["estimate"] < 0.05  # L/h, a newborn's


def test_a_singular_matrix_is_one_line_and_exit_2(monkeypatch):
    def singular(*args, **kwargs):
        np.linalg.inv(np.zeros((2, 2)))  # what a far-off start does deep in FOCE-I

    monkeypatch.setattr(nonmem_fit, "fit_population", singular)  # calibration maps it, for every caller
    result = runner.invoke(app, ["fit", str(PHENO), "-m", "iv_1cpt", "--population"])
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert "failed numerically (Singular matrix)" in line and "--init" in line
