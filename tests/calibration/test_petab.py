"""PEtab v1 interop: the export passes the petab linter and reads back to the same objective."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.design.insilico import Experiment, lab_rows, write_lab_dataset
from calibration.errors import CalibrationError
from calibration.estimate.lab_fit import chip_problem
from calibration.io.lab import read_lab_dataset
from calibration.io.petab import export_petab, import_petab, lint_petab
from twin.catalogue import get_model

TRUTH = {"ps": 0.5, "vmax": 2.0, "km": 10.0, "kon": 0.05, "koff": 0.02}
FIX = {"ps": 0.5, "kon": 0.05, "koff": 0.02}


def lab_file(tmp_path, sample_volume_ml=0.0):
    rng = np.random.default_rng(0)
    rows = []
    for chip, dose in (("low", 5.0), ("high", 100.0)):
        experiment = Experiment(
            dose,
            (0.5, 2, 6, 12, 24),
            sample_volume_ml=sample_volume_ml,
            observables=("drug_medium", "metabolite_medium"),
        )
        rows += lab_rows(chip, experiment, TRUTH, 0.1, rng)
    return write_lab_dataset(rows, tmp_path / "lab.csv")


def test_lab_export_lints_and_round_trips_to_the_same_objective(tmp_path):
    pytest.importorskip("petab")
    path = lab_file(tmp_path)
    yaml = export_petab(path, "liver_chip", tmp_path / "petab", estimate=["vmax", "km"], fix=FIX, error="comb")
    assert lint_petab(yaml)
    problem = import_petab(yaml)
    assert problem.names == ("vmax", "km") and problem.model == "liver_chip"
    assert problem.error.parameter_names == (
        "drug_medium.add_sd",
        "drug_medium.prop_cv",
        "metabolite_medium.add_sd",
        "metabolite_medium.prop_cv",
    )
    spec = get_model("liver_chip")
    bounds = {n: (spec.parameter(n).lower, spec.parameter(n).upper) for n in ("vmax", "km")}
    originals = [chip_problem(c, spec, ("vmax", "km"), FIX, bounds, "comb") for c in read_lab_dataset(path).values()]
    for x in (np.log([2.0, 10.0, 0.05, 0.1, 0.05, 0.1]), np.log([3.0, 5.0, 0.2, 0.05, 0.1, 0.2])):
        assert problem.objective(x) == pytest.approx(sum(p.objective(x) for p in originals), rel=1e-6, abs=1e-6)


def test_nonmem_single_bolus_export_lints_and_round_trips(tmp_path):
    pytest.importorskip("petab")
    spec = get_model("iv_1cpt")
    times = [0.5, 1, 2, 4, 8, 12]
    rows = ["ID,TIME,AMT,EVID,CMT,DV,MDV"]
    for subject, dose in ((1, 100.0), (2, 50.0)):
        rows.append(f"{subject},0,{dose},1,1,.,1")
        rows += [f"{subject},{t},0,0,1,{dose / 30 * np.exp(-0.1 * t):.4f},0" for t in times]
    path = tmp_path / "nm.csv"
    path.write_text("\n".join(rows) + "\n")
    yaml = export_petab(path, "iv_1cpt", tmp_path / "petab", error="prop")
    assert lint_petab(yaml)
    problem = import_petab(yaml)
    assert set(problem.names) == set(spec.parameter_names)
    x = np.log([spec.parameter(n).default for n in problem.names] + [0.1])
    assert np.isfinite(problem.objective(x))
    assert problem.dv.size == 12


def test_later_dosing_events_are_refused_with_the_reason(tmp_path):
    path = lab_file(tmp_path, sample_volume_ml=0.02)
    with pytest.raises(CalibrationError, match="PEtab v1 has no events"):
        export_petab(path, "liver_chip", tmp_path / "petab", estimate=["vmax"], fix=FIX)
