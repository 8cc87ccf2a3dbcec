"""Reading NONMEM-style CSVs: defaults, and one clear error naming the line and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.dataset import read_dataset
from twin.errors import DatasetError, TwinError, UnknownModelError, UnknownParameterError
from twin.pk import simulate_dataset

GOOD = "id,time,amt,evid,cmt,dv\n1,0,100,1,1,.\n1,1,0,0,2,3.2\n1,2,.,0,2,2.9\n"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "data.csv"
    path.write_text(text)
    return path


def test_headers_any_case_and_nonmem_defaults(tmp_path: Path) -> None:
    data = read_dataset(_write(tmp_path, GOOD.replace("id,time", "Id,TiMe")))
    assert {"ID", "TIME", "AMT", "EVID", "CMT", "RATE", "II", "ADDL", "SS", "MDV"} <= set(data.columns)
    assert list(data.index) == [2, 3, 4]  # file lines
    assert data.loc[4, "AMT"] == 0 and data["RATE"].eq(0).all() and data["MDV"].tolist() == [1, 0, 0]


def test_evid_derived_when_absent(tmp_path: Path) -> None:
    data = read_dataset(_write(tmp_path, "ID,TIME,AMT,DV\n1,0,100,.\n1,1,0,3\n"))
    assert data["EVID"].tolist() == [1, 0]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("ID,TIME,AMT\n1,0,-5\n", 2, "negative"),
        ("ID,TIME,AMT\n1,0,abc\n", 2, "not a number"),
        ("ID,TIME,AMT\n1,2,100\n1,1,0\n", 3, "before the previous"),
        ("ID,TIME,AMT,II\n1,0,100,12\n", 2, "without ADDL or SS"),
        ("ID,TIME,AMT,ADDL\n1,0,100,3\n", 2, "with II 0"),
        ("ID,TIME,AMT,EVID\n1,0,100,7\n", 2, "EVID 7"),
        ("ID,TIME,AMT\n1,.,100\n", 2, "TIME is missing"),
        ("ID,TIME,AMT,RATE\n1,0,100,-3\n", 2, "RATE -3"),
        ("ID,TIME,AMT,SS\n1,0,100,1\n", 2, "SS with II 0"),
    ],
)
def test_bad_rows_name_the_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    with pytest.raises(DatasetError, match=rf"^\S+\.csv line {line}: .*{words}"):
        read_dataset(_write(tmp_path, text))


def test_time_may_restart_on_a_reset(tmp_path: Path) -> None:
    data = read_dataset(_write(tmp_path, "ID,TIME,AMT,EVID\n1,0,100,1\n1,10,0,0\n1,0,50,4\n1,5,0,0\n"))
    out = simulate_dataset(data, "iv_1cpt", {"cl": 1.0, "v": 10.0})
    assert out.loc[4, "IPRED"] == pytest.approx(5.0)  # reset then 50 mg into 10 L
    assert out.loc[5, "IPRED"] == pytest.approx(5.0 * 2.718281828459045**-0.5)


def test_dose_into_a_missing_compartment(tmp_path: Path) -> None:
    path = _write(tmp_path, "ID,TIME,AMT,CMT\n1,0,0,1\n1,0,100,3\n")
    with pytest.raises(DatasetError, match=r"^line 3: dose into CMT 3, but model 'oral_1cpt' has compartments 1–2"):
        simulate_dataset(path, "oral_1cpt", {})


def test_unknown_model_and_parameter(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    with pytest.raises(UnknownModelError, match="oral_1cpt"):
        simulate_dataset(path, "oral_9cpt", {})
    with pytest.raises(UnknownParameterError, match="no parameter 'k'"):
        simulate_dataset(path, "oral_1cpt", {"k": 1.0})


def test_parameter_columns_checked(tmp_path: Path) -> None:
    path = _write(tmp_path, "ID,TIME,AMT,CMT,WT\n1,0,100,1,70\n1,1,0,2,.\n")
    with pytest.raises(DatasetError, match=r"^line 3: no value for parameter v"):
        simulate_dataset(path, "oral_1cpt", {"v": "@wt"})
    with pytest.raises(DatasetError, match="column 'bw'"):
        simulate_dataset(path, "oral_1cpt", {"v": "@bw"})
    with pytest.raises(DatasetError, match=r"^line 2: RATE -2 needs the modelled duration d1"):
        simulate_dataset(_write(tmp_path, "ID,TIME,AMT,CMT,RATE\n1,0,100,1,-2\n"), "oral_1cpt", {})


def test_units_at_the_boundary(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    plain = simulate_dataset(path, "oral_1cpt", {"cl": 1.1, "v": 20.0})["IPRED"]
    converted = simulate_dataset(path, "oral_1cpt", {"cl": "18.333333333333333 mL/min", "v": "20000 mL"})["IPRED"]
    assert converted.to_numpy() == pytest.approx(plain.to_numpy(), rel=1e-12)
    with pytest.raises(TwinError, match="parameter cl"):
        simulate_dataset(path, "oral_1cpt", {"cl": "5 kg"})
