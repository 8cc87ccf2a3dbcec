"""The closed-form exposure against numerical integration, regimens, targets and dose recommendation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import minimize_scalar

from twin.drugs import load_drug
from twin.errors import TwinError
from twin.patients import (
    IndividualPK,
    Patient,
    Target,
    TargetError,
    concentration_mg_per_l,
    exposure,
    parse_regimen,
    parse_target,
    predict,
    recommend_dose,
)

RTOL = 1e-6


def _ode_course(cl, v, ka, f, regimen, n_doses):
    """Integrate depot/central/AUC dose by dose; returns the solution of each interval."""
    k = cl / v
    oral = regimen.route == "oral"

    def rhs(_t, y):
        depot, central, _auc = y
        return [-ka * depot, (ka * depot if oral else 0.0) - k * central, central / v]

    state, pieces = np.zeros(3), []
    for dose in range(n_doses):
        state[0 if oral else 1] += (f if oral else 1.0) * regimen.dose_mg
        start = dose * regimen.interval_h
        solution = solve_ivp(
            rhs, (start, start + regimen.interval_h), state, method="DOP853", rtol=1e-12, atol=1e-15, dense_output=True
        )
        pieces.append(solution)
        state = solution.y[:, -1].copy()
    return pieces


CASES = {  # cl L/h, v L, ka 1/h, F
    "oral": (5.0, 50.0, 1.2, 0.6),
    "oral_flip_flop": (20.0, 40.0, 0.15, 0.8),
    "oral_ka_equals_k": (5.0, 50.0, 0.1, 0.7),
    "iv": (5.0, 50.0, 1.0, 1.0),
}


@pytest.mark.parametrize("case", CASES)
def test_closed_form_matches_numerical_integration(case):
    cl, v, ka, f = CASES[case]
    route = "iv" if case == "iv" else "oral"
    regimen = parse_regimen(f"100 mg q12h x5 {route}")
    pk = IndividualPK(np.array([cl, 2 * cl]), np.array([v, v]), np.array([ka, ka]), np.array([f, f]), fu_p=0.1)
    result = exposure(pk, regimen)
    pieces = _ode_course(cl, v, ka, f, regimen, regimen.n_doses)
    last = pieces[-1]
    start = last.t[0]
    peak = minimize_scalar(
        lambda t: -last.sol(t)[1] / v,
        bounds=(start, start + regimen.interval_h),
        method="bounded",
        options={"xatol": 1e-10},
    )
    assert result.cmax[0] == pytest.approx(-peak.fun, rel=RTOL)
    assert result.ctrough[0] == pytest.approx(last.y[1, -1] / v, rel=RTOL)
    assert result.auc_0_end[0] == pytest.approx(last.y[2, -1], rel=RTOL)
    assert result.cmax_unbound[0] == pytest.approx(0.1 * result.cmax[0])
    times = np.linspace(0.25, 59.75, 40)
    numeric = np.concatenate([p.sol(times[(times >= p.t[0]) & (times < p.t[-1])])[1] for p in pieces]) / v
    np.testing.assert_allclose(concentration_mg_per_l(pk, regimen, times)[0], numeric, rtol=RTOL)
    assert result.auc_tau_ss[1] == pytest.approx(result.auc_tau_ss[0] / 2)  # vectorised, linear in 1/CL


@pytest.mark.parametrize("case", ["oral", "iv"])
def test_steady_state_matches_a_long_numerical_course(case):
    cl, v, ka, f = CASES[case]
    regimen = parse_regimen(f"100 mg q12h x40 {'iv' if case == 'iv' else 'oral'}")
    pk = IndividualPK(np.array([cl]), np.array([v]), np.array([ka]), np.array([f]), fu_p=0.1)
    result = exposure(pk, regimen)
    last = _ode_course(cl, v, ka, f, regimen, regimen.n_doses)[-1]  # e^(−k·τ·40) ≈ 1e-21: steady
    peak = minimize_scalar(
        lambda t: -last.sol(t)[1] / v, bounds=(last.t[0], last.t[-1]), method="bounded", options={"xatol": 1e-10}
    )
    assert result.cmax_ss[0] == pytest.approx(-peak.fun, rel=RTOL)
    assert result.ctrough_ss[0] == pytest.approx(last.y[1, -1] / v, rel=RTOL)
    assert result.auc_tau_ss[0] == pytest.approx(last.y[2, -1] - last.y[2, 0], rel=RTOL)


@pytest.mark.parametrize(
    "text, dose, interval, n, route",
    [
        ("100 mg q12h x14 oral", 100, 12, 14, "oral"),
        ("0.5 g q1d x7 po", 500, 24, 7, "oral"),
        ("250 mg q8 x3 IV", 250, 8, 3, "iv"),
    ],
)
def test_regimen_parsing(text, dose, interval, n, route):
    regimen = parse_regimen(text)
    assert (regimen.dose_mg, regimen.interval_h, regimen.n_doses, regimen.route) == (dose, interval, n, route)


@pytest.mark.parametrize(
    "text, message",
    [
        ("100 mg every 12 h", "write it like '100 mg q12h x14 oral'"),
        ("100 mg q12h x14 rectal", "unknown route 'rectal'"),
        ("100 mL q12h x14 oral", "dose"),
        ("100 mg q0h x14 oral", "must be positive"),
    ],
)
def test_bad_regimens(text, message):
    with pytest.raises(TwinError, match=message):
        parse_regimen(text)


def test_targets_and_recommendation_centre_the_patient():
    assert parse_target("auc_tau_ss", "50") == Target("auc_tau_ss", 40.0, 62.5)
    with pytest.raises(TargetError, match="unknown target metric"):
        Target("cmin", 1, 2)
    with pytest.raises(TargetError, match="low < high"):
        parse_target("ctrough_ss", "3:1")
    pk = IndividualPK(np.array([5.0]), np.array([50.0]), np.array([1.0]), np.array([0.5]), fu_p=0.1)
    regimen = parse_regimen("100 mg q12h x14 oral")
    result = exposure(pk, regimen)  # AUCτ,ss = 0.5·100/5 = 10 mg·h/L
    target = Target("auc_tau_ss", 16.0, 25.0)  # geometric centre 20
    exact = recommend_dose(target, regimen.dose_mg, result)
    assert exact.dose_mg == pytest.approx(200.0) and exact.in_window
    rounded = recommend_dose(target, regimen.dose_mg, result, strengths_mg=[75.0])
    assert rounded.dose_mg == 225.0 and rounded.predicted == pytest.approx(22.5)  # 2×75 → 15, 3×75 → 22.5


def test_predict_for_a_patient_gives_a_recommendation_inside_a_reachable_window():
    patient = Patient(54, "female", 72, 0.9)
    drug = load_drug("example_chip_compound")
    prediction = predict(
        drug, patient, parse_regimen("100 mg q12h x14 oral"), Target("auc_tau_ss", 1.0, 2.0), strengths_mg=[50, 100]
    )
    assert prediction.recommendation.in_window
    assert prediction.toxicity_margin == pytest.approx(50.0 * 300.0 / 1000 / (drug.fu_p * prediction.exposure.cmax[0]))


def test_a_washed_out_trough_is_not_fixed_by_dose():
    pk = IndividualPK(np.array([50.0]), np.array([10.0]), np.array([2.0]), np.array([0.5]), fu_p=0.1)
    regimen = parse_regimen("100 mg q24h x7 oral")  # k = 5/h: nothing left after 24 h
    with pytest.raises(TargetError, match="change the interval"):
        recommend_dose(Target("ctrough_ss", 1.0, 2.0), regimen.dose_mg, exposure(pk, regimen))
