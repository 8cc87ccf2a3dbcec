"""The one TOML line finder (twin.toml_lines) and the lines it puts in each file type's messages (#15)."""

from __future__ import annotations

from pathlib import Path

import pytest

from calibration.design.space import load_space
from calibration.errors import CalibrationError
from calibration.trial.errors import TrialError
from calibration.trial.trial_file import load_trial_design
from twin.errors import TwinError
from twin.patients.covariates import PatientError
from twin.patients.patient_file import load_patient
from twin.toml_lines import file_path, read_toml

REPO = Path(__file__).resolve().parents[2]

TEXT = """\
name = "x"              # line 1

[pump]                  # line 3
max_flow = "1 mL/min"   # line 4

[[instruments]]         # line 6
name = "a"
[instruments.connection]
port = 502              # line 9

[[instruments]]         # line 11
name = "b"              # line 12
limits = { max = 1 }    # line 13
at = [
  "1 h",
]
"""


def test_lines_of_keys_tables_and_array_items() -> None:
    doc = read_toml(TEXT, "f.toml")
    assert doc.line(("name",)) == 1
    assert doc.line(("pump",)) == 3
    assert doc.line(("pump", "max_flow")) == 4
    assert doc.line(("instruments", 0)) == 6
    assert doc.line(("instruments", 0, "connection", "port")) == 9
    assert doc.line(("instruments", 1)) == 11
    assert doc.line(("instruments", 1, "name")) == 12
    assert doc.line(("instruments", 1, "limits", "max")) == 13  # inside an inline table: its key's line
    assert doc.line(("instruments", 1, "at")) == 14
    assert doc.line(("instruments", 1, "at", 0)) == 15  # a multi-line array: each element's own line
    assert doc.where(("pump", "max_flow")) == "f.toml line 4"


def test_elements_of_a_multi_line_array_of_inline_tables() -> None:
    text = 'faults = [\n  { kind = "a", at = [1, 2] },\n  { kind = "b" }, { kind = "c" },\n]\nseed = 7\nxs = [1, [2, 3],\n 4]\n'
    doc = read_toml(text, "s.toml")
    assert [doc.line(("faults", i, "kind")) for i in range(3)] == [2, 3, 3]
    assert doc.line(("seed",)) == 5
    assert [doc.line(("xs", i)) for i in range(3)] == [6, 6, 7]


def test_pydantic_union_branches_are_not_keys() -> None:
    assert file_path(("pump", "max_flow", "float")) == ("pump", "max_flow")
    assert read_toml(TEXT, "f.toml").line(("pump", "max_flow", "str")) == 4


def test_a_syntax_error_names_its_line_and_the_end_of_the_document_is_the_last_line() -> None:
    with pytest.raises(TwinError, match=r"^f\.toml line 2: not valid TOML"):
        read_toml("a = 1\nb = = 2\nc = 3\n", "f.toml")
    with pytest.raises(TwinError, match=r"^f\.toml line 3: not valid TOML"):
        read_toml('a = 1\nb = 2\nc = "open\n', "f.toml")


def _patient(tmp_path: Path, extra: str) -> Path:
    base = (REPO / "examples" / "patients" / "p001.toml").read_text()
    path = tmp_path / "p.toml"
    path.write_text(base + extra)
    return path


@pytest.mark.parametrize(
    ("edit", "line", "words"),
    [
        ("\n[abundance]\nCYP3A4 = nan\n", 13, "abundance.CYP3A4"),
        ('\n[[comedication]]\ndrug = "ketoconazole"\nunbound_concentration = "-1 uM"\n', 14, "'-1 uM'"),
        ('\n[abundance]\nCYP3A4 = 95.0\ncolour = "red"\n', 14, "colour"),
    ],
)
def test_patient_messages_name_the_line(tmp_path: Path, edit: str, line: int, words: str) -> None:
    with pytest.raises(PatientError, match=rf"^p\.toml line {line}: .*{words}"):
        load_patient(_patient(tmp_path, edit))


def test_a_patient_value_out_of_range_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text((REPO / "examples" / "patients" / "p001.toml").read_text().replace('"72 kg"', '"7200 kg"'))
    with pytest.raises(TwinError, match=r"^p\.toml line 5: weight 7200"):
        load_patient(path)


SPACE = """\
observables = ["drug_medium"]

[doses]
levels_um = [1, 10]

[schedules]
early = [0.5, 1, 2]

[samples]
volumes_ml = [0.02]

[chips]
free = ["chip-3", "chip-4"]
removed_ml = { chip-4 = 0.05 }
"""


@pytest.mark.parametrize(
    ("old", "new", "line", "words"),
    [
        ("early = [0.5, 1, 2]", "early = [0.5, 0.5, 2]", 7, "twice"),
        ("volumes_ml = [0.02]", "volumes_ml = [0]", 10, "samples.volumes_ml"),
        ("chip-4 = 0.05", "chip-9 = 0.05", 14, "chip-9"),
        ("levels_um = [1, 10]", "levels_um = [1, 10]\nstep = 2", 5, "unknown key doses.step"),
    ],
)
def test_design_space_messages_name_the_line(tmp_path: Path, old: str, new: str, line: int, words: str) -> None:
    path = tmp_path / "space.toml"
    path.write_text(SPACE.replace(old, new))
    with pytest.raises(CalibrationError, match=rf"space\.toml line {line}: .*{words}"):
        load_space(path)


def test_trial_messages_name_the_line(tmp_path: Path) -> None:
    text = (REPO / "examples" / "trials" / "procova_chip_study.toml").read_text()
    lines = text.splitlines()
    target = next(i for i, line in enumerate(lines, start=1) if line.strip().startswith("correlation"))
    path = tmp_path / "trial.toml"
    path.write_text("\n".join(line if n != target else "correlation = 1.5" for n, line in enumerate(lines, start=1)))
    with pytest.raises(TrialError, match=rf"trial\.toml line {target}: prognostic\.correlation = 1\.5"):
        load_trial_design(path)
