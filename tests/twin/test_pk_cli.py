"""`chiptwin simulate` through typer's runner: CSV out, and user errors as one line, exit 2."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from twin.pk import simulate_dataset
from ui.cli.app import app as chiptwin

DATA = "ID,TIME,AMT,EVID,CMT,BIO,DV\n1,0,100,1,1,0.5,.\n1,2,.,0,2,0.5,1.5\n1,6,.,0,2,0.5,2.5\n"


@pytest.fixture
def app() -> typer.Typer:
    return chiptwin  # the real command line: user errors are mapped where users meet them


@pytest.fixture
def data_path(tmp_path: Path) -> Path:
    path = tmp_path / "data.csv"
    path.write_text(DATA)
    return path


def test_simulate_writes_input_plus_ipred(app, data_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            str(data_path),
            "--model",
            "oral_1cpt",
            "-p",
            "ka=1.5",
            "-p",
            "cl=1.1 L/h",
            "-p",
            "v=20",
            "-p",
            "f1=@bio",
            "--scale",
            "1000",
        ],
    )
    assert result.exit_code == 0, result.output
    out = pd.read_csv(io.StringIO(result.stdout), dtype=str, keep_default_na=False)
    assert list(out.columns) == ["ID", "TIME", "AMT", "EVID", "CMT", "BIO", "DV", "IPRED"]
    assert out["AMT"].tolist() == ["100", ".", "."]  # the input rows unchanged
    expected = simulate_dataset(data_path, "oral_1cpt", {"ka": 1.5, "cl": 1.1, "v": 20, "f1": "@bio"}, scale=1000)
    assert out["IPRED"].astype(float).tolist() == pytest.approx(expected["IPRED"].tolist(), rel=1e-12)


def test_simulate_to_file(app, data_path: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    result = CliRunner().invoke(app, ["simulate", str(data_path), "-m", "iv_1cpt", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(target)) == 3


@pytest.mark.parametrize(
    "arguments",
    [
        ["-m", "oral_1cpt", "-p", "k=1"],
        ["-m", "nope"],
        ["-m", "oral_1cpt", "-p", "cl"],
        ["-m", "iv_1cpt", "-p", "cl=3 kg"],
    ],
)
def test_user_errors_are_one_line_exit_2(app, data_path: Path, arguments: list[str]) -> None:
    result = CliRunner().invoke(app, ["simulate", str(data_path), *arguments])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_bad_dataset_line_reported(app, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("ID,TIME,AMT\n1,0,100\n1,1,-4\n")
    result = CliRunner().invoke(app, ["simulate", str(path), "-m", "iv_1cpt"])
    assert result.exit_code == 2 and result.stderr.startswith("error: bad.csv line 3: AMT -4 is negative")
