"""The exact (eigen) solver against closed forms and against a tight solve_ivp run of the same events."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twin.pk import Integrator, simulate_dataset

PARAMS = {
    "iv_1cpt": {"cl": 2.0, "v": 15.0},
    "oral_1cpt": {"ka": 1.3, "cl": 2.0, "v": 15.0},
    "iv_2cpt": {"cl": 3.0, "v1": 20.0, "q": 5.0, "v2": 60.0},
    "oral_2cpt": {"ka": 1.2, "cl": 3.0, "v1": 20.0, "q": 5.0, "v2": 60.0},
}
TIGHT = Integrator(method="LSODA", rtol=1e-11, atol=1e-13)


def _dose(subject, time, cmt, amt, **items) -> dict:
    return {"ID": subject, "TIME": time, "EVID": items.pop("EVID", 1), "CMT": cmt, "AMT": amt, **items}


def _regimens(first: int, central: int) -> pd.DataFrame:
    """Every kind of event: bolus/infusion, ADDL, lag, F, RATE -1/-2, SS 1/2, EVID 3/4."""
    doses = [
        _dose(1, 0.0, first, 100, II=12, ADDL=5, LAGT=0.7, BIO=0.8),
        _dose(2, 0.0, central, 100, RATE=30, II=8, ADDL=4),
        _dose(3, 0.0, first, 100, SS=1, II=12, ADDL=2, LAGT=0.0),
        _dose(3, 30.0, central, 100, RATE=2, SS=2, II=24, ADDL=1),  # 50 h infusions overlap
        _dose(4, 0.0, central, 80, RATE=-2, II=12, ADDL=3, DUR=2.5),
        _dose(4, 50.0, central, 0, EVID=3),
        _dose(4, 52.0, central, 60, RATE=-1, EVID=4, RT=40.0),
        _dose(5, 0.0, central, 100, RATE=10, SS=1, II=12, ADDL=3, LAGT=15.0, BIO=0.6),  # lag > II
        _dose(6, 0.0, first, 100, SS=1, II=24, ADDL=1, LAGT=30.0),
    ]
    observations = [
        {"ID": s, "TIME": t, "EVID": 0, "CMT": central, "AMT": 0}
        for s in range(1, 7)
        for t in np.r_[np.arange(0.0, 96.0, 1.5), [12.0, 24.0, 50.0, 52.0]]
    ]
    frame = pd.DataFrame(doses + observations).fillna({"RATE": 0, "II": 0, "ADDL": 0, "SS": 0})
    frame = frame.sort_values(["ID", "TIME", "EVID"], kind="stable", key=lambda c: c if c.name != "EVID" else -c)
    return frame.fillna({"LAGT": 0.0, "BIO": 1.0, "DUR": 1.0, "RT": 1.0}).reset_index(drop=True)


@pytest.mark.parametrize("model", list(PARAMS))
def test_exact_matches_integrator(model: str) -> None:
    oral = model.startswith("oral")
    first, central = 1, (2 if oral else 1)
    data = _regimens(first, central)
    params = {
        **PARAMS[model],
        f"alag{first}": "@LAGT",
        f"f{first}": "@BIO",
        f"d{central}": "@DUR",
        f"r{central}": "@RT",
        f"alag{central}": "@LAGT",
        f"f{central}": "@BIO",
    }
    exact = simulate_dataset(data, model, params)["IPRED"].to_numpy()
    ode = simulate_dataset(data, model, params, engine="ode", integrator=TIGHT)["IPRED"].to_numpy()
    assert np.isfinite(exact).all() and exact.max() > 1.0
    # ≤ 1e-6 relative; an absolute floor of 1e-9 × the peak for values that pass through 0
    np.testing.assert_allclose(exact, ode, rtol=1e-6, atol=1e-9 * np.abs(ode).max())


def test_oral_bolus_is_the_bateman_function() -> None:
    ka, cl, v, dose, f, lag = 1.3, 2.0, 15.0, 100.0, 0.7, 0.5
    times = np.linspace(0.0, 48.0, 97)
    data = pd.DataFrame(
        {
            "ID": 1,
            "TIME": np.r_[0.0, times],
            "AMT": np.r_[dose, 0 * times],
            "EVID": np.r_[1, 0 * times],
            "CMT": np.r_[1, 2 + 0 * times],
        }
    )
    got = simulate_dataset(data, "oral_1cpt", {"ka": ka, "cl": cl, "v": v, "f1": f, "alag1": lag})["IPRED"][1:]
    k, tau = cl / v, np.maximum(times - lag, 0.0)
    bateman = f * dose * ka / (v * (ka - k)) * (np.exp(-k * tau) - np.exp(-ka * tau))
    np.testing.assert_allclose(got, bateman, rtol=1e-12, atol=1e-14)


def test_iv_steady_state_infusion_and_bolus_closed_forms() -> None:
    cl, v, ii, dose, rate = 2.0, 15.0, 12.0, 100.0, 25.0
    k = cl / v
    data = pd.DataFrame(
        {
            "ID": [1, 1, 2, 2],
            "TIME": [0.0, 0.0, 0.0, 0.0],
            "AMT": [dose, 0, dose, 0],
            "EVID": [1, 0, 1, 0],
            "SS": [1, 0, 1, 0],
            "II": [ii, 0, ii, 0],
            "RATE": [0, 0, rate, 0],
        }
    )
    got = simulate_dataset(data, "iv_1cpt", {"cl": cl, "v": v})["IPRED"].to_numpy()
    peak = dose / v / (1 - np.exp(-k * ii))  # bolus at steady state, just after the dose
    duration = dose / rate  # infusion at steady state: trough at the start of an infusion
    trough = rate / cl * (1 - np.exp(-k * duration)) * np.exp(-k * (ii - duration)) / (1 - np.exp(-k * ii))
    np.testing.assert_allclose(got, [peak, peak, trough, trough], rtol=1e-12)


def test_nearly_equal_eigenvalues_fall_back_to_the_integrator() -> None:
    """ka = CL/V makes the eigenvectors degenerate; the answer is the Bateman limit ka·t·e^{-kt}."""
    cl, v = 2.0, 16.0
    k = cl / v
    times = np.linspace(0.5, 24.0, 48)
    data = pd.DataFrame(
        {
            "ID": 1,
            "TIME": np.r_[0.0, times],
            "AMT": np.r_[100.0, 0 * times],
            "EVID": np.r_[1, 0 * times],
            "CMT": np.r_[1, 2 + 0 * times],
        }
    )
    got = simulate_dataset(data, "oral_1cpt", {"ka": k, "cl": cl, "v": v})["IPRED"][1:]
    np.testing.assert_allclose(got, 100.0 / v * k * times * np.exp(-k * times), rtol=1e-7)


def test_warfarin_single_dose_runs_and_recovers() -> None:
    times = np.arange(0.0, 400.0, 6.0)
    data = pd.DataFrame(
        {"ID": 1, "TIME": np.r_[0.0, times], "AMT": np.r_[100.0, 0 * times], "EVID": np.r_[1, 0 * times], "CMT": 1}
    )
    cp = simulate_dataset(data, "warfarin_pkpd")["IPRED"].to_numpy()[1:]
    pca = simulate_dataset(data, "warfarin_pkpd", observable="pca")["IPRED"].to_numpy()[1:]
    assert cp[0] == 0 and cp.max() > 5 and pca[0] == pytest.approx(96.6)
    assert pca.min() < 0.6 * 96.6  # anticoagulated, then recovering toward baseline
    assert pca.argmin() > cp.argmax() and pca[-1] > pca.min()
