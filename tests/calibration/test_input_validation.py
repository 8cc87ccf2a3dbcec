"""Issue #15 for calibration's files: design spaces (`chiptwin design --space`) and the datasets
`chiptwin fit` reads. Each mistake: one line on stderr, exit 2, the file and the key named."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from calibration.design.space import MAX_CANDIDATES, load_space
from calibration.errors import CalibrationError
from calibration.io.record import Estimate, FitRecord
from ui.cli.app import app

runner = CliRunner()
SPACE = """observables = ["drug_medium"]

[doses]
levels_um = [1, 10, 100]

[schedules]
early = [0.5, 1, 2]

[samples]
volumes_ml = [0.02]

[chips]
free = ["chip-3", "chip-4"]
removed_ml = { chip-4 = 0.05 }

[constraints]
max_concentration_um = 200
max_volume_removed_ml = 0.1

[error.drug_medium]
prop_cv = 0.15
"""


@pytest.fixture(scope="module")
def fit_json(tmp_path_factory) -> Path:
    theta = {
        n: Estimate(**{"estimate": v, "se": 0.5 * v, "ci95": [v / 2.7, v * 2.7], "rse_percent": 50.0})
        for n, v in {"vmax": 2.0, "km": 10.0}.items()
    }
    record = FitRecord(
        "liver_chip",
        "1.0.0",
        "pooled",
        True,
        10.0,
        8,
        2,
        3,
        theta,
        {"drug_medium.prop_cv": 0.15},
        correlation={"names": ["vmax", "km"], "matrix": [[1.0, 0.0], [0.0, 1.0]]},
        data_selection={"fixed": {"ps": 0.5}},
    )
    path = tmp_path_factory.mktemp("fit") / "fit.json"
    path.write_text(record.to_json())
    return path


def design(fit: Path, space: Path):
    return runner.invoke(app, ["design", str(fit), "--space", str(space), "--draws", "1", "--top", "1", "--json"])


def refused(result, *words: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_the_base_space_is_accepted_and_quantities_with_units_are_read(fit_json: Path, tmp_path: Path) -> None:
    path = tmp_path / "space.toml"
    path.write_text(SPACE)
    assert design(fit_json, path).exit_code == 0
    path.write_text(
        SPACE.replace("max_concentration_um = 200", 'max_concentration_um = "0.2 mM"').replace(
            "max_volume_removed_ml = 0.1", 'max_volume_removed_ml = "100 uL"'
        )
    )
    space = load_space(path)
    assert space.max_concentration_um == pytest.approx(200) and space.max_volume_removed_ml == pytest.approx(0.1)


MISTAKES = {
    "concentration in kg": (
        "max_concentration_um = 200",
        'max_concentration_um = "200 kg"',
        ("max_concentration_um", "'200 kg' is not a [substance] / [volume]", "200 uM"),
    ),
    "removed volume in kg": (
        "max_volume_removed_ml = 0.1",
        'max_volume_removed_ml = "0.1 kg"',
        ("max_volume_removed_ml", "[volume]"),
    ),
    "infinite dose level": ("levels_um = [1, 10, 100]", "levels_um = [1, inf, 100]", ("doses.levels_um.1", "inf")),
    "nan dose level": ("levels_um = [1, 10, 100]", "levels_um = [1, nan]", ("doses.levels_um.1",)),
    "duplicate dose level": ("levels_um = [1, 10, 100]", "levels_um = [1, 10, 10]", ("levels_um lists 10 twice",)),
    "duplicate sampling time": ("early = [0.5, 1, 2]", "early = [0.5, 1, 1]", ("schedules.early", "1 h is twice")),
    "unsorted sampling times": ("early = [0.5, 1, 2]", "early = [2, 1, 0.5]", ("schedules.early", "out of order")),
    "empty schedule": ("early = [0.5, 1, 2]", "early = []", ("schedules.early is empty",)),
    "zero sample volume": ("volumes_ml = [0.02]", "volumes_ml = [0]", ("samples.volumes_ml.0", "positive")),
    "sample larger than the medium": ("volumes_ml = [0.02]", "volumes_ml = [5.0]", ("not below the medium volume",)),
    "negative removed volume": ("chip-4 = 0.05", "chip-4 = -0.05", ("chips.removed_ml.chip-4",)),
    "removed volume of a chip that is not free": ("chip-4 = 0.05", "chip-9 = 0.05", ("'chip-9', which is not in",)),
    "negative residual cv": ("prop_cv = 0.15", "prop_cv = -0.15", ("error.drug_medium.prop_cv", "≥ 0")),
    "unknown key in a section": (
        "prop_cv = 0.15",
        "prop_cv = 0.15\nprop_sd = 1",
        ("unknown key error.drug_medium.prop_sd",),
    ),
    "unknown top-level section": ("[samples]", "[sample]", ("unknown section sample",)),
    "unknown observable": ('observables = ["drug_medium"]', 'observables = ["oxygen"]', ("observables.0",)),
    "boolean as a dose": ("levels_um = [1, 10, 100]", "levels_um = [true]", ("doses.levels_um.0",)),
    "duplicate chip": (
        'free = ["chip-3", "chip-4"]',
        'free = ["chip-3", "chip-3"]',
        ("chips.free lists 'chip-3' twice",),
    ),
    "negative limit": ("max_concentration_um = 200", "max_concentration_um = -5", ("must be positive",)),
    "toml syntax": ("[doses]", "[doses", ("not valid TOML",)),
}


@pytest.mark.parametrize("case", MISTAKES)
def test_design_space_mistakes_are_one_line(fit_json: Path, tmp_path: Path, case: str) -> None:
    old, new, words = MISTAKES[case]
    assert old in SPACE
    path = tmp_path / "space.toml"
    path.write_text(SPACE.replace(old, new, 1))
    refused(design(fit_json, path), "space.toml", *words)


def test_too_many_candidates_is_refused_before_any_simulation(fit_json: Path, tmp_path: Path) -> None:
    levels = ", ".join(str(1 + k) for k in range(1000))
    schedules = "\n".join(f"s{k} = [{1 + k}]" for k in range(200))
    path = tmp_path / "space.toml"
    path.write_text(
        SPACE.replace("levels_um = [1, 10, 100]", f"levels_um = [{levels}]").replace("early = [0.5, 1, 2]", schedules)
    )
    refused(design(fit_json, path), f"above the limit of {MAX_CANDIDATES:,}")


def test_design_space_file_level_mistakes(fit_json: Path, tmp_path: Path) -> None:
    path = tmp_path / "space.toml"
    path.write_bytes(SPACE.encode() + b"# caf\xe9\n")
    refused(design(fit_json, path), "space.toml", "not UTF-8")
    refused(design(fit_json, tmp_path), "is a directory")
    path.write_text("")
    refused(design(fit_json, path), "is empty")
    with pytest.raises(CalibrationError, match="does not exist"):
        load_space(tmp_path / "nope.toml")


# -- datasets as `chiptwin fit` reads them ---------------------------------------------------------------
def fit(path: Path):
    return runner.invoke(app, ["fit", str(path), "-m", "iv_1cpt", "--pooled", "--json"])


def test_fit_dataset_file_level_mistakes(tmp_path: Path) -> None:
    refused(fit(tmp_path), "is a directory")
    path = tmp_path / "d.csv"
    path.write_bytes(b"ID,TIME,AMT,DV\n1,0,100,\xff\n")
    refused(fit(path), "d.csv", "not UTF-8")
    path.write_text("ID,TIME,AMT,DV\n")
    refused(fit(path), "d.csv", "no rows")
    path.write_text("ID,TIME,TIME,DV\n1,0,0,1\n")
    refused(fit(path), "d.csv", "column 'TIME' appears twice")
    path.write_text("ID,TIME,AMT,EVID,II,ADDL,DV,MDV\n1,0,100,1,24,1e9,.,1\n1,1,0,0,0,0,5,0\n")
    refused(fit(path), "ADDL 1e+09")


def test_lab_dataset_mistakes(tmp_path: Path) -> None:
    path = tmp_path / "lab.csv"
    header = "chip,time_h,event,amount_nmol,volume_ml,observable,value,unit\n"
    path.write_text(header + "c1,0,dose,10,0.01,,,\nc1,inf,observation,,,drug_medium,1,uM\n")
    refused(runner.invoke(app, ["fit", str(path), "-m", "liver_chip", "--json"]), "line 3", "time_h 'inf'")
    path.write_text(header)
    refused(runner.invoke(app, ["fit", str(path), "-m", "liver_chip", "--json"]), "no rows")
