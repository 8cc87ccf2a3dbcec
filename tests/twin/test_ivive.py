"""IVIVE (MODELS.md §3) against Obach 1997 Table 3, and the chip-to-human chain's arithmetic."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from twin.errors import InvalidValueError, UnitError
from twin.ivive import (
    ScalingFactors,
    clint_from_well_stirred,
    hepatic_clearance,
    ivive_from_chip,
    oral_bioavailability,
    well_stirred,
)
from twin.units import Q_

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference"
OBACH = REFERENCE / "ivive" / "obach1997_table3_wellstirred.csv"
DRUGS = ("propranolol", "imipramine", "warfarin")


@pytest.fixture(scope="module")
def obach() -> dict[str, dict[str, float]]:
    if not OBACH.is_file():
        pytest.skip(f"!!! {OBACH} is missing: the Obach 1997 IVIVE validation was SKIPPED !!!")
    with OBACH.open(newline="") as handle:
        return {row["quantity"]: {d: float(row[d]) for d in DRUGS} for row in csv.DictReader(handle)}


def two_significant_figures_tolerance(table_value: float) -> float:
    """The table gives 2 significant figures: any value that rounds to it is within half a unit
    of the second digit (e.g. 8.4 ± 0.05, 0.072 ± 0.0005)."""
    return 0.5 * 10 ** (math.floor(math.log10(abs(table_value))) - 1) * (1 + 1e-9)


def _predict(obach, drug: str, *, binding: bool) -> float:
    column = {quantity: values[drug] for quantity, values in obach.items()}
    qh = Q_(column["hepatic_blood_flow_Q"], "mL/min/kg")
    clint = Q_(column["CLint_scaled_total_in_vitro"], "mL/min/kg")
    if not binding:  # eq. 1: no binding terms at all
        return hepatic_clearance(clint, fu_p=1.0, bp=1.0, qh=qh).to("mL/min/kg").magnitude
    fu_mic = column["fu_microsomes"]
    fu_serum = column["fu_serum_over_fu_microsomes"] * fu_mic
    # eq. 4: fub = fu_serum/BP, in-vitro binding corrected by CLint,u = CLint/fu_mic
    return (
        hepatic_clearance(clint, fu_p=fu_serum, bp=column["blood_to_plasma"], qh=qh, fu_inc=fu_mic)
        .to("mL/min/kg")
        .magnitude
    )


@pytest.mark.parametrize("drug", DRUGS)
def test_well_stirred_without_binding_reproduces_obach_table3(obach, drug):
    expected = obach["WS_eq1_no_binding_CLblood_pred"][drug]
    assert _predict(obach, drug, binding=False) == pytest.approx(
        expected, abs=two_significant_figures_tolerance(expected)
    )


@pytest.mark.parametrize(
    "drug",
    [
        "propranolol",
        "warfarin",
        pytest.param(
            "imipramine",
            marks=pytest.mark.xfail(
                strict=True,
                reason=(
                    "from the table's own inputs (fu_s/fu_mic 0.31, BP 1.1, CLint 48, Q 21) eq. 4 gives 8.2 mL/min/kg, "
                    "not the printed 9.0 (8.7 even without BP); propranolol and warfarin reproduce, so the printed value "
                    "rests on an input the table does not show"
                ),
            ),
        ),
    ],
)
def test_well_stirred_with_serum_and_microsome_binding_reproduces_obach_table3(obach, drug):
    expected = obach["WS_eq4_serum_microsome_partitioning_CLblood_pred"][drug]
    assert _predict(obach, drug, binding=True) == pytest.approx(
        expected, abs=two_significant_figures_tolerance(expected)
    )


def test_propranolol_example_of_models_md(obach):
    assert round(_predict(obach, "propranolol", binding=False)) == 15
    assert round(_predict(obach, "propranolol", binding=True), 1) == 8.4


def test_chip_to_human_chain_in_numbers():
    # vmax 0.5 nmol/min = 30 nmol/h over km 10 µM on 1e6 cells: 3 mL/h per 1e6 cells
    result = ivive_from_chip("0.5 nmol/min", "10 uM", 1.0, fu_p=0.2, bp=1.0, body_weight="70 kg", fa=0.9)
    assert result.clint_chip_ml_per_h == pytest.approx(3.0)
    assert result.clint_u_human_l_per_h == pytest.approx(3.0 * 120 * 25.7 * 70 / 1000)  # 647.64 L/h
    assert result.qh_l_per_h == pytest.approx(20.7 * 60 / 1000 * 70)  # ~87 L/h
    fub_clint = 0.2 * result.clint_u_human_l_per_h
    assert result.clh_blood_l_per_h == pytest.approx(result.qh_l_per_h * fub_clint / (result.qh_l_per_h + fub_clint))
    assert result.fh == pytest.approx(1 - result.clh_blood_l_per_h / result.qh_l_per_h)
    assert result.f_oral == pytest.approx(0.9 * result.fh)


def test_fu_inc_and_scaling_factors_enter_as_stated():
    base = ivive_from_chip(30, 10, 2.0, fu_p=1, bp=1)
    bound = ivive_from_chip(30, 10, 2.0, fu_p=1, bp=1, fu_inc=0.5)
    assert bound.clint_u_per_million_ml_per_h == pytest.approx(2 * base.clint_u_per_million_ml_per_h)
    low = ivive_from_chip(30, 10, 2.0, fu_p=1, bp=1, scaling=ScalingFactors(hepatocellularity_per_g=99e6))
    assert low.clint_u_human_l_per_h == pytest.approx(base.clint_u_human_l_per_h * 99 / 120)


def test_inverse_well_stirred_round_trips_and_refuses_clearance_above_flow():
    clint = clint_from_well_stirred(87.0, 0.05, 30.0)
    assert well_stirred(87.0, 0.05, clint) == pytest.approx(30.0)
    with pytest.raises(InvalidValueError, match="not below hepatic blood flow"):
        clint_from_well_stirred(87.0, 0.05, 90.0)


def test_bad_inputs_say_what_is_wrong():
    with pytest.raises(UnitError, match="km"):
        ivive_from_chip(30, "10 mg", 1.0, fu_p=0.2, bp=1.0)
    with pytest.raises(InvalidValueError, match="fu_p"):
        ivive_from_chip(30, 10, 1.0, fu_p=1.5, bp=1.0)
    with pytest.raises(InvalidValueError, match="Fa"):
        oral_bioavailability(0.0, 1.0, 0.5)
