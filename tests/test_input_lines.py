"""Every TOML file a person writes is refused with its line (#15 item 1): patient, design-space and
trial files name file, line, key, value and fix, as the rig, scenario and protocol files do; through
the real CLI each is one line on stderr and exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from calibration.design.space import load_space
from calibration.errors import CalibrationError
from calibration.trial.errors import TrialError
from calibration.trial.trial_file import load_trial_design
from twin.errors import TwinError
from twin.patients.patient_file import load_patient
from twin.toml_lines import read_toml

REPO = Path(__file__).resolve().parents[1]
CHIPTWIN = Path(sys.executable).with_name("chiptwin")
PATIENT = (REPO / "examples/patients/p001.toml").read_text()
SPACE = (REPO / "examples/design/space.toml").read_text()
TRIAL = (REPO / "examples/trials/procova_chip_study.toml").read_text()


def _line_of(text: str, needle: str) -> int:
    """The 1-based line of the first line containing ``needle`` (what the message must name)."""
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


def _edit(text: str, old: str, new: str) -> str:
    assert old in text, f"the example no longer holds {old!r}: update the test"
    return text.replace(old, new, 1)


def test_the_line_index_finds_keys_tables_and_array_items() -> None:
    text = 'a = 1\n[t]\nb = 2\n\n[[items]]\nname = "x"\n[[items]]\nname = "y"\nc = { d = 1 }\n'
    doc = read_toml(text, "f.toml")
    assert doc.line(("a",)) == 1 and doc.line(("t", "b")) == 3
    assert doc.line(("items", 1)) == 7 and doc.line(("items", 1, "name")) == 8
    assert doc.line(("items", 1, "c", "d")) == 9  # inside an inline table: the key that holds it
    assert doc.where(("t", "b")) == "f.toml line 3"


PATIENT_CASES = [
    ("weight", lambda t: _edit(t, 'weight = "72 kg"', 'weight = "72 kilo"'), "weight ="),
    ("abundance", lambda t: t + "\n[abundance]\nCYP3A4 = nan\n", "CYP3A4 = nan"),
    ("unknown", lambda t: t + "\nfavourite_colour = 1\n", "favourite_colour"),
    (
        "comedication",
        lambda t: t + '\n[[comedication]]\ndrug = "ketoconazole"\nunbound_concentration = "-1 uM"\n',
        "unbound_concentration",
    ),
]


@pytest.mark.parametrize(("case", "edit", "needle"), PATIENT_CASES, ids=[c[0] for c in PATIENT_CASES])
def test_a_patient_file_error_names_its_line(tmp_path, case, edit, needle) -> None:
    text = edit(PATIENT)
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(TwinError) as caught:
        load_patient(path)
    assert str(caught.value).startswith(f"p.toml line {_line_of(text, needle)}:"), str(caught.value)


SPACE_CASES = [
    ("twice", lambda t: _edit(t, "late   = [12, 24, 36, 48]", "late = [12, 24, 24]"), "late ="),
    ("negative volume", lambda t: _edit(t, "volumes_ml = [0.02]", "volumes_ml = [-0.02]"), "volumes_ml ="),
    (
        "mass as concentration",
        lambda t: _edit(t, "max_concentration_um = 200 ", 'max_concentration_um = "200 kg" '),
        "max_concentration_um",
    ),
    ("unknown chip", lambda t: _edit(t, "chip-4 = 0.05", "chip-9 = 0.05"), "removed_ml"),
    ("duplicate dose", lambda t: _edit(t, "[1, 2, 5, 10, 20, 50, 100, 200]", "[1, 2, 2]"), "levels_um"),
    ("unknown section", lambda t: t + "\n[extra]\na = 1\n", "[extra]"),
]


@pytest.mark.parametrize(("case", "edit", "needle"), SPACE_CASES, ids=[c[0] for c in SPACE_CASES])
def test_a_design_space_error_names_its_line(tmp_path, case, edit, needle) -> None:
    text = edit(SPACE)
    path = tmp_path / "space.toml"
    path.write_text(text)
    with pytest.raises(CalibrationError) as caught:
        load_space(path)
    assert f"space.toml line {_line_of(text, needle)}:" in str(caught.value), str(caught.value)


TRIAL_CASES = [
    ("correlation", lambda t: _edit(t, "correlation = 0.7 ", "correlation = 1.7 "), "correlation ="),
    ("unknown key", lambda t: _edit(t, "control = 12", "control = 12\ncontrl = 3"), "contrl"),
    ("too many trials", lambda t: _edit(t, "n_trials = 10000", "n_trials = 100000000"), "n_trials"),
]


@pytest.mark.parametrize(("case", "edit", "needle"), TRIAL_CASES, ids=[c[0] for c in TRIAL_CASES])
def test_a_trial_file_error_names_its_line(tmp_path, case, edit, needle) -> None:
    text = edit(TRIAL)
    path = tmp_path / "trial.toml"
    path.write_text(text)
    with pytest.raises(TrialError) as caught:
        load_trial_design(path)
    assert f"trial.toml line {_line_of(text, needle)}:" in str(caught.value), str(caught.value)


@pytest.mark.parametrize(
    ("name", "text", "args", "needle"),
    [
        (
            "p.toml",
            PATIENT + "\nfavourite_colour = 1\n",
            ["predict", "--patient", "{path}", "--drug", "metoprolol", "--regimen", "100 mg q12h x14 oral"],
            "favourite_colour",
        ),
        (
            "space.toml",
            SPACE.replace("volumes_ml = [0.02]", "volumes_ml = [-0.02]"),
            ["design", str(REPO / "examples/fits/midazolam_chip_fit.json"), "--space", "{path}"],
            "volumes_ml =",
        ),
        (
            "trial.toml",
            TRIAL.replace("correlation = 0.7 ", "correlation = 1.7 "),
            ["trial", "simulate", "{path}"],
            "correlation =",
        ),
    ],
    ids=["patient", "design-space", "trial"],
)
def test_through_the_cli_it_is_one_line_with_the_line_number_and_exit_2(tmp_path, name, text, args, needle) -> None:
    path = tmp_path / name
    path.write_text(text)
    done = subprocess.run(
        [str(CHIPTWIN), *[a.format(path=path) for a in args]], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert f"line {_line_of(text, needle)}" in lines[0], lines[0]
