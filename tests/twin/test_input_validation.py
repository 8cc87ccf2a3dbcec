"""Issue #15 for the twin's files: patients and NONMEM-style datasets.

Each malformed input is refused through the real CLI with one line on stderr and exit 2
(never a traceback, never accepted silently); the message names the file or row and what
would be accepted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin.dataset import MAX_DOSE_EVENTS, MAX_TIME_H
from twin.errors import TwinError
from twin.userfile import MAX_CONFIG_BYTES, UserFileError, read_user_text
from ui.cli.app import app

runner = CliRunner()
PATIENT = """id = "P-1"
age = "54 years"
sex = "female"
weight = "72 kg"
serum_creatinine = "0.9 mg/dL"
"""
PREDICT = ["--drug", "midazolam", "--regimen", "7.5 mg q24h x7 oral", "--json"]
SIMULATE = ["-m", "iv_1cpt", "-p", "cl=1.1", "-p", "v=20"]


def refused(result, *words: str) -> str:
    """Exit 2, one line `error: …` on stderr naming ``words``, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def predict(path: Path):
    return runner.invoke(app, ["predict", "--patient", str(path), *PREDICT])


def simulate(path: Path):
    return runner.invoke(app, ["simulate", str(path), *SIMULATE])


# -- the shared reader ---------------------------------------------------------------------------
def test_the_reader_refuses_each_unusable_file_in_one_line(tmp_path: Path) -> None:
    cases = {"binary.toml": b"age = \xff\xfe\n", "empty.toml": b"", "blank.toml": b"  \n\n", "nul.toml": b"a = 1\x00\n"}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    with pytest.raises(
        UserFileError, match=r"binary\.toml line 1: the patient file is not UTF-8 text \(byte 0xff at offset 6\)"
    ):
        read_user_text(tmp_path / "binary.toml", "patient file")
    for name in ("empty.toml", "blank.toml"):
        with pytest.raises(UserFileError, match="is empty"):
            read_user_text(tmp_path / name, "patient file")
    with pytest.raises(UserFileError, match="NUL bytes"):
        read_user_text(tmp_path / "nul.toml", "patient file")
    with pytest.raises(UserFileError, match="is a directory, not a patient file"):
        read_user_text(tmp_path, "patient file")
    with pytest.raises(UserFileError, match="does not exist"):
        read_user_text(tmp_path / "nope.toml", "patient file")
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * MAX_CONFIG_BYTES)
    with pytest.raises(UserFileError, match=f"above the limit of {MAX_CONFIG_BYTES:,} bytes"):
        read_user_text(big, "patient file")
    (tmp_path / "bom.toml").write_bytes("\ufeffa = 1\n".encode())
    assert read_user_text(tmp_path / "bom.toml", "patient file") == "a = 1\n"


# -- patients ------------------------------------------------------------------------------------
def test_the_example_patient_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(PATIENT)
    assert predict(path).exit_code == 0


PATIENT_MISTAKES = {
    "nan abundance": ("[abundance]\nCYP3A4 = nan\n", "abundance.CYP3A4"),
    "infinite abundance": ("[abundance]\nCYP3A4 = inf\n", "abundance.CYP3A4"),
    "absurd abundance": ("[abundance]\nCYP3A4 = 1e9\n", "0–10000"),
    "negative co-medication": (
        '[[comedication]]\ndrug = "ketoconazole"\nunbound_concentration = "-0.02 uM"\n',
        "outside 0–10000 µM",
    ),
    "co-medication listed twice": (
        '[[comedication]]\ndrug = "ketoconazole"\nunbound_concentration = "0.02 uM"\n'
        '[[comedication]]\ndrug = "ketoconazole"\nunbound_concentration = "0.03 uM"\n',
        "listed twice",
    ),
    "co-medication unknown key": (
        '[[comedication]]\ndrug = "ketoconazole"\nunbound_concentration = "0.02 uM"\ndose = 3\n',
        "unknown key comedication.0.dose",
    ),
    "nan weight": (None, "weight"),
    "boolean age": (None, "age"),
    "quantity that would hang pint": (None, "cannot read"),
}


@pytest.mark.parametrize("case", PATIENT_MISTAKES)
def test_patient_mistakes_are_one_line(tmp_path: Path, case: str) -> None:
    extra, word = PATIENT_MISTAKES[case]
    text = PATIENT + (extra or "")
    if case == "nan weight":
        text = text.replace('weight = "72 kg"', "weight = nan")
    if case == "boolean age":
        text = text.replace('age = "54 years"', "age = true")
    if case == "quantity that would hang pint":
        text = text.replace('weight = "72 kg"', 'weight = "9**9**9 kg"')
    path = tmp_path / "p.toml"
    path.write_text(text)
    refused(predict(path), "p.toml", word)


def test_a_patient_id_that_is_a_list_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(PATIENT.replace('id = "P-1"', 'id = ["P", 1]'))
    refused(predict(path), "p.toml line 1: id must be text", "['P', 1]")


def test_patient_file_not_utf8_directory_and_empty(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_bytes(PATIENT.replace("female", "f\xe9male").encode("latin-1"))
    refused(predict(path), "p.toml", "not UTF-8", "fix: save the file as UTF-8")
    refused(predict(tmp_path), "is a directory")
    path.write_text("")
    refused(predict(path), "is empty")


# -- datasets ------------------------------------------------------------------------------------
DOSE = "ID,TIME,AMT,EVID,CMT,II,ADDL,DV,MDV\n1,0,100,1,1,0,0,.,1\n1,1,0,0,1,0,0,5,0\n"


def test_a_good_dataset_simulates(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text(DOSE)
    result = simulate(path)
    assert result.exit_code == 0 and "IPRED" in result.stdout


def test_dataset_file_level_mistakes(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(DOSE.encode() + b"1,2,\xff,0,1,0,0,5,0\n")
    refused(simulate(path), "d.csv", "not UTF-8")
    refused(simulate(tmp_path), "is a directory")
    path.write_text("ID,TIME,AMT,EVID,CMT,DV\n")
    refused(simulate(path), "d.csv", "no rows")
    path.write_text("")
    refused(simulate(path), "is empty")
    path.write_text("ID,TIME,TIME,AMT\n1,0,0,100\n")
    refused(simulate(path), "d.csv", "column 'TIME' appears twice")


@pytest.mark.parametrize(
    ("rows", "words"),
    [
        ("1,0,100,1,1,24,1e9,.,1\n", ("ADDL 1e+09", f"beyond the limit of {MAX_TIME_H:g} h")),
        ("1,0,100,1,1,0.001,999999,.,1\n1,0,100,1,1,0.001,999999,.,1\n", ("expand", f"{MAX_DOSE_EVENTS:,}")),
        ("1,0,100,1,1,0,0,.,1\n1,1,0,0,1,0,0,5,2\n", ("line 3", "MDV 2 is not 0")),
        ("1,inf,100,1,1,0,0,.,1\n", ("line 2", "TIME inf is not a finite number")),
        ("1,0,1e999,1,1,0,0,.,1\n", ("AMT inf",)),
        ("1,1e9,100,1,1,0,0,.,1\n", ("TIME 1e+09 h is beyond",)),
    ],
)
def test_dataset_rows_that_would_be_absurd_or_unbounded(tmp_path: Path, rows: str, words: tuple[str, ...]) -> None:
    path = tmp_path / "d.csv"
    path.write_text("ID,TIME,AMT,EVID,CMT,II,ADDL,DV,MDV\n" + rows)
    refused(simulate(path), *words)


def test_a_steady_state_infusion_spanning_millions_of_intervals_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("ID,TIME,AMT,RATE,EVID,CMT,II,SS,DV,MDV\n1,0,100,-2,1,1,0.001,1,.,1\n1,1,0,0,0,1,0,0,5,0\n")
    result = runner.invoke(app, ["simulate", str(path), *SIMULATE, "-p", "d1=10000"])
    refused(result, "line 2", "steady-state", "limit")


def test_errors_are_twin_errors() -> None:
    assert issubclass(UserFileError, TwinError)
