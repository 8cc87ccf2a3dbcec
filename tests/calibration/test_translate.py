"""`chiptwin translate` (#14 item 1): the chip → IVIVE → patient chain against a hand calculation."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from twin.drugs import load_drug
from ui.cli.app import app

runner = CliRunner()
PATIENT = "examples/patients/p001.toml"  # 54 y, female, 72 kg, SCr 0.9 mg/dL, CYP2D6 *1/*4


def _fit(tmp_path, vmax=30.0, km=10.0, ci=True, model="liver_chip"):
    theta = {"vmax": {"estimate": vmax}, "km": {"estimate": km}}
    if ci:
        theta["vmax"]["ci95"], theta["km"]["ci95"] = [vmax / 1.5, vmax * 1.5], [km / 1.3, km * 1.3]
    path = tmp_path / "fit.json"
    path.write_text(
        json.dumps(
            {
                "model": model,
                "method": "individual",
                "theta": theta,
                "correlation": {"names": ["vmax", "km"], "matrix": [[1.0, 0.8], [0.8, 1.0]]},
            }
        )
    )
    return path


def _translate(*args):
    out = runner.invoke(app, ["translate", *args, "--json"])
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


def test_chain_reproduces_the_hand_calculation(tmp_path):
    result = _translate(
        "--fit",
        str(_fit(tmp_path)),
        "--drug",
        "example_chip_compound",
        "--cells-million",
        "2",
        "--patient",
        PATIENT,
        "--regimen",
        "100 mg q12h x1 oral",
    )
    drug = load_drug("example_chip_compound")  # fu_p 0.2, BP 1, Fa 0.9, Fg 1, ka 1/h, V 1 L/kg, [chip] fu_inc 0.8
    weight, female_crcl = 72.0, (140 - 54) * 72.0 / (72 * 0.9) * 0.85
    capacity = (1 - 0.6 - 0.2) + 0.6 * 1.0 + 0.2 * 0.5  # CYP2D6 *1/*4: activity score 1 of 2
    per_million = 30.0 / 10.0 / 2.0 / 0.8  # mL/h per 10^6 cells
    clint_u = per_million * 120.0 * 25.7 / 1000.0 * weight * capacity  # L/h
    qh = 20.7 * 60 / 1000 * weight
    fub = 0.2 / 1.0
    clh = qh * fub * clint_u / (qh + fub * clint_u)
    cl = clh * 1.0 + drug.cl_renal_ref_l_per_h * female_crcl / 100.0
    f = 0.9 * 1.0 * (1 - clh / qh)
    v, ka = 1.0 * weight, 1.0
    k = cl / v
    tmax = math.log(ka / k) / (ka - k)
    cmax = f * 100.0 * ka / (v * (ka - k)) * (math.exp(-k * tmax) - math.exp(-ka * tmax))
    tau = 12.0
    auc_0_end = f * 100.0 / cl * (1 - (ka * math.exp(-k * tau) - k * math.exp(-ka * tau)) / (ka - k))
    expected = {
        "clint_u_l_per_h": clint_u,
        "cl_l_per_h": cl,
        "f_oral": f,
        "tmax_h": tmax,
        "cmax_mg_per_l": cmax,
        "cmax_um": cmax * 1000 / 300.0,
        "auc_0_end_mg_h_per_l": auc_0_end,
        "auc_tau_ss_mg_h_per_l": f * 100 / cl,
    }
    for name, value in expected.items():
        assert result["metrics"][name]["point"] == pytest.approx(value, rel=1e-6), name
    factors = {f["name"]: f for f in result["factors"]}
    assert factors["CL (plasma)"]["value"] == pytest.approx(cl, rel=1e-6)
    assert factors["fu_inc (binding in the chip)"]["source"] == "example_chip_compound.toml [chip].fu_inc"
    assert all(f["source"] for f in result["factors"])  # every factor names its source


def test_intervals_carry_the_fits_uncertainty_and_the_populations_variability(tmp_path):
    common = ["--drug", "example_chip_compound", "--cells-million", "1", "--regimen", "100 mg q12h x1 oral"]
    exact = _translate("--fit", str(_fit(tmp_path, ci=False)), *common)["metrics"]["cl_l_per_h"]
    assert exact["low"] == pytest.approx(exact["high"], rel=1e-5)  # no interval in the record: no spread
    uncertain = _translate("--fit", str(_fit(tmp_path)), *common)["metrics"]["cl_l_per_h"]
    population = _translate("--fit", str(_fit(tmp_path)), *common, "--population", "2000")["metrics"]["cl_l_per_h"]
    assert uncertain["low"] < uncertain["point"] < uncertain["high"]
    assert population["high"] / population["low"] > uncertain["high"] / uncertain["low"]


def test_a_fit_without_chip_metabolism_is_refused_in_one_line(tmp_path):
    out = runner.invoke(
        app,
        [
            "translate",
            "--fit",
            str(_fit(tmp_path, model="oral_1cpt")),
            "--drug",
            "midazolam",
            "--cells-million",
            "1",
            "--regimen",
            "7.5 mg q24h x1 oral",
        ],
    )
    assert out.exit_code == 2
    assert (
        out.output.strip().startswith("error: ")
        and "liver_chip" in out.output
        and len(out.output.strip().splitlines()) == 1
    )
    out = runner.invoke(
        app,
        [
            "translate",
            "--fit",
            str(_fit(tmp_path)),
            "--drug",
            "midazolam",
            "--cells-million",
            "0",
            "--regimen",
            "7.5 mg q24h x1 oral",
        ],
    )
    assert out.exit_code == 2 and "--cells-million" in out.output


def test_the_worked_example_of_the_docs_runs():
    result = _translate(
        "--fit",
        "examples/fits/midazolam_chip_fit.json",
        "--drug",
        "midazolam",
        "--cells-million",
        "1",
        "--patient",
        PATIENT,
        "--regimen",
        "7.5 mg q24h x1 oral",
    )
    cl = result["metrics"]["cl_l_per_h"]
    assert cl["low"] <= cl["point"] <= cl["high"]
    assert 0 < result["metrics"]["f_oral"]["point"] < 1


def test_cli_module_imports_no_numerical_library():
    import subprocess
    import sys

    code = (
        "import sys, ui.cli.translate; heavy = [m for m in ('numpy', 'scipy', 'statsmodels', 'pandas') "
        "if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60).returncode == 0


def test_the_well_stirred_path_is_twin_patients_individual_pk_term_by_term():
    from dataclasses import replace

    import numpy as np

    from twin.patients import Regimen, exposure, individual_pk
    from twin.translate import Subjects, clint_u_per_kg_l_per_h, translate

    drug = load_drug("example_chip_compound")
    rng = np.random.default_rng(1)
    subjects = Subjects(
        rng.uniform(50, 100, 50),
        rng.uniform(40, 120, 50),
        rng.uniform(0.2, 1.5, 50),
        *(rng.normal(0, 0.3, 50) for _ in range(3)),
    )
    regimen = Regimen(100.0, 12.0, 3, "oral")
    ours = translate(drug, 30.0, 10.0, n_cells_million=2.0, subjects=subjects, regimen=regimen, fu_inc=0.8)
    forward = replace(drug, clint_u_l_per_h_per_kg=clint_u_per_kg_l_per_h(30.0, 10.0, 2.0, 0.8))
    pk = individual_pk(
        forward,
        subjects.weight_kg,
        subjects.crcl_ml_per_min,
        subjects.capacity,
        eta_cl=subjects.eta_cl,
        eta_v=subjects.eta_v,
        eta_ka=subjects.eta_ka,
    )
    reference = exposure(pk, regimen)
    np.testing.assert_allclose(ours["cl_l_per_h"], pk.cl_l_per_h, rtol=1e-12)
    np.testing.assert_allclose(ours["f_oral"], pk.f_oral, rtol=1e-12)
    np.testing.assert_allclose(ours["cmax_mg_per_l"], reference.cmax, rtol=1e-12)
    np.testing.assert_allclose(ours["auc_0_end_mg_h_per_l"], reference.auc_0_end, rtol=1e-12)


def test_dispersion_model_lies_between_well_stirred_and_parallel_tube_and_reaches_both_limits():
    import numpy as np

    from twin.translate import hepatic_blood_clearance

    qh, fub = 90.0, 0.5
    clint = np.array([1.0, 20.0, 180.0, 1800.0, 18000.0])  # RN = fub·CLint/Qh from 0.006 to 100
    ws = hepatic_blood_clearance(qh, fub, clint, "well-stirred")
    disp = hepatic_blood_clearance(qh, fub, clint, "dispersion")
    pt = qh * (1 - np.exp(-fub * clint / qh))  # parallel tube
    assert np.all(ws <= disp + 1e-9) and np.all(disp <= pt + 1e-9)
    assert disp[-1] < qh and np.isfinite(disp).all()  # no overflow at RN = 100
    np.testing.assert_allclose(hepatic_blood_clearance(qh, fub, clint, "dispersion", dn=1e5), ws, rtol=1e-3)
    np.testing.assert_allclose(hepatic_blood_clearance(qh, fub, clint, "dispersion", dn=1e-5), pt, rtol=1e-3)


def test_the_dispersion_model_is_chosen_on_the_command_line(tmp_path):
    common = [
        "--fit",
        str(_fit(tmp_path)),
        "--drug",
        "example_chip_compound",
        "--cells-million",
        "1",
        "--regimen",
        "100 mg q12h x1 oral",
    ]
    ws, disp = _translate(*common), _translate(*common, "--liver-model", "dispersion")
    assert disp["metrics"]["cl_l_per_h"]["point"] > ws["metrics"]["cl_l_per_h"]["point"]
    assert any(f["name"] == "dispersion number DN" and f["value"] == 0.17 for f in disp["factors"])
    out = runner.invoke(app, ["translate", *common, "--liver-model", "tube"])
    assert out.exit_code == 2 and "--liver-model" in out.output
