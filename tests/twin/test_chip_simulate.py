"""Simulating chips: mass balance, exact events, solver accuracy, batched == per chip, stepping."""

from __future__ import annotations

import numpy as np
import pytest

from twin.chip import (
    ChipRun,
    Dose,
    MediaChange,
    Sample,
    advance,
    apply_event,
    initial_state,
    simulate_chip,
    simulate_chips,
)
from twin.units import Q_

SCHEDULE = [
    Dose(0.0, 50.0, 0.1),
    Sample(2.0, 0.05),
    Dose(5.0, 100.0, 0.05),
    Sample(24.0, 0.1),
    MediaChange(30.0, 1.0, 10.0),
    Sample(36.0, 0.1),
]
TIMES = np.array([0.0, 1.0, 2.0, 4.9, 5.0, 12.0, 24.0, 30.0, 33.0, 36.0, 48.0])
DRUG = ("A_m", "A_c", "A_p", "M_m")


def _closure(result: dict, axis_sum: int = 0) -> np.ndarray:
    """(in chip now + taken out) / put in − 1, at every output time."""
    inside = sum(result[s] for s in DRUG)
    removed = result["removed_A_m_nmol"] + result["removed_M_m_nmol"]
    return (inside + removed) / result["drug_added_nmol"] - 1.0


def test_drug_mass_balance_closes_per_chip():
    result = simulate_chip(None, SCHEDULE, TIMES, return_states=True)
    assert result["drug_added_nmol"][-1] == pytest.approx(150.0 + 10.0)  # 2 doses + fresh medium at 10 µM
    assert result["removed_A_m_nmol"][-1] > 50.0  # the media change took most of the drug out
    assert np.max(np.abs(_closure(result))) < 1e-9


def test_drug_mass_balance_closes_in_the_batched_path():
    result = simulate_chips(
        [ChipRun(None, SCHEDULE), ChipRun({"km": 1.0, "kon": 0.5}, SCHEDULE[:3])], TIMES, return_states=True
    )
    assert result["A_m"].shape == (2, len(TIMES))
    assert np.max(np.abs(_closure(result))) < 1e-9


def test_dose_shows_up_exactly_at_its_time():
    times = np.array([4.999999, 5.0])
    result = simulate_chip(None, [Dose(5.0, 20.0, 0.0)], times, return_states=True)
    assert result["A_m"][0] == 0.0  # nothing before the dose, not even a smoothed-over bit
    assert result["A_m"][1] == 20.0  # right-continuous: at 5 h the dose is in
    assert result["drug_medium"][1] == pytest.approx(20.0 / 1.0)


def test_sampling_reduces_the_volume_not_the_concentration():
    result = simulate_chip(
        None, [Dose(0.0, 30.0, 0.0), Sample(3.0, 0.25)], np.array([3.0 - 1e-9, 3.0]), return_states=True
    )
    assert result["V_m"].tolist() == [1.0, 0.75]
    assert result["drug_medium"][1] == pytest.approx(result["drug_medium"][0], rel=1e-7)
    assert result["removed_A_m_nmol"][1] == pytest.approx(0.25 * result["A_m"][0], rel=1e-7)


def test_media_change_replaces_medium_and_empties_metabolite():
    result = simulate_chip(None, SCHEDULE, TIMES, return_states=True)
    at = list(TIMES).index(30.0)
    assert result["V_m"][at] == 1.0
    assert result["A_m"][at] == 10.0 and result["M_m"][at] == 0.0
    assert result["A_p"][at] > 0  # the PDMS keeps what it absorbed


def test_pint_quantities_are_accepted_at_the_boundary():
    events = [Dose(Q_(1, "h"), Q_(0.02, "umol"), "50 uL")]
    plain = simulate_chip({"km": 10.0}, [Dose(1.0, 20.0, 0.05)], TIMES, return_states=True)
    quantity = simulate_chip({"km": Q_(0.01, "mM")}, events, TIMES, return_states=True)
    np.testing.assert_allclose(quantity["A_m"], plain["A_m"], rtol=1e-12)


@pytest.fixture(scope="module")
def reference() -> dict:
    return simulate_chip(None, SCHEDULE, TIMES, rtol=1e-12, atol=1e-14, method="Radau")


@pytest.mark.parametrize("method", ["BDF", "Radau", "LSODA"])
def test_integrators_agree_with_a_tight_reference(method, reference):
    result = simulate_chip(None, SCHEDULE, TIMES, method=method)
    for name in ("drug_medium", "metabolite_medium", "oxygen", "viability"):
        np.testing.assert_allclose(result[name], reference[name], rtol=2e-6, atol=1e-9)


def test_batched_rodas_agrees_with_the_tight_reference_and_per_chip_solves():
    rng = np.random.default_rng(5)
    chips = [
        ChipRun(
            {"ps": float(rng.uniform(0.1, 2)), "vmax": float(rng.uniform(0.5, 5)), "ec50": float(rng.uniform(5, 100))},
            [Dose(float(rng.uniform(0, 3)), float(rng.uniform(10, 200)), 0.05), Sample(24.0, 0.1)],
        )
        for _ in range(3)
    ]
    batched = simulate_chips(chips, TIMES)
    for i, chip in enumerate(chips):
        reference = simulate_chip(chip.params, chip.events, TIMES, rtol=1e-12, atol=1e-14, method="LSODA")
        single = simulate_chip(chip.params, chip.events, TIMES)
        for name in ("drug_medium", "metabolite_medium", "oxygen", "viability"):
            np.testing.assert_allclose(batched[name][i], reference[name], rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(batched[name][i], single[name], rtol=2e-6, atol=1e-9)


def test_stepper_matches_a_whole_simulation():
    state = initial_state()
    state = apply_event(state, Dose(0.0, 50.0, 0.1))
    state = advance(state, 1.0)
    state = advance(state, Q_(60, "min"))
    state = apply_event(state, Sample(2.0, 0.05))
    state = advance(state, 3.0)
    whole = simulate_chip(None, SCHEDULE[:2], np.array([5.0]), return_states=True)
    assert state.time_h == 5.0
    assert state["V_m"] == pytest.approx(1.05)
    assert state["A_m"] == pytest.approx(whole["A_m"][0], rel=1e-6)
    assert state.observables()["drug_medium"] == pytest.approx(whole["drug_medium"][0], rel=1e-6)
    assert state["removed_A_m_nmol"] == pytest.approx(whole["removed_A_m_nmol"][0], rel=1e-6)


def test_multi_organ_conserves_drug_through_oral_and_reservoir_doses():
    events = [
        Dose(0.0, 10.0, 0.0, medium="apical"),
        Sample(6.0, 0.05, medium="reservoir"),
        Dose(12.0, 5.0, 0.02, medium="reservoir"),
    ]
    result = simulate_chip(None, events, np.array([0.0, 6.0, 24.0]), model="multi_organ", return_states=True)
    inside = sum(v for k, v in result.items() if k.startswith(("A_", "M_liver")))
    closure = (inside + result["removed_A_R_nmol"] + result["removed_A_ap_nmol"]) / result["drug_added_nmol"] - 1
    assert np.max(np.abs(closure)) < 1e-9
    assert result["A_urine"][-1] > 0 and result["M_liver"][-1] > 0  # kidney cleared, liver metabolised
    assert result["teer_gut"][0] == 500.0 and result["teer_gut"][-1] < 500.0


def test_multi_organ_batched_agrees_with_per_chip():
    events = [Dose(0.0, 10.0, 0.0, medium="apical")]
    single = simulate_chip({"vmax_liver": 3.0}, events, np.array([0.0, 4.0, 12.0]), model="multi_organ")
    batched = simulate_chips([ChipRun({"vmax_liver": 3.0}, events)], np.array([0.0, 4.0, 12.0]), model="multi_organ")
    np.testing.assert_allclose(batched["drug_reservoir"][0], single["drug_reservoir"], rtol=2e-6, atol=1e-10)


def test_samples_keep_the_batched_step_size_and_the_answers(monkeypatch):
    """A sample scales the medium's solutes in proportion, so the batched Rodas4 carries its step size on
    (a dose or a media change restarts it small): hourly samples cost few extra steps, and the chip
    still agrees with a tight reference."""
    from twin.chip import batch

    steps = []
    original = batch.rodas4_step
    monkeypatch.setattr(batch, "rodas4_step", lambda *a: steps.append(1) or original(*a))
    times = np.arange(0.0, 49.0, 1.0)
    sampled = [Dose(0.0, 60.0, 0.05), *[Sample(float(t), 0.005) for t in times[1:]]]
    plain = [Dose(0.0, 60.0, 0.05)]
    result = simulate_chips([ChipRun(None, sampled)], times, rtol=1e-6, atol=1e-9)
    with_samples, steps[:] = len(steps), []
    simulate_chips([ChipRun(None, plain)], times, rtol=1e-6, atol=1e-9)
    assert with_samples <= len(steps) + 10  # 48 restarts would cost ~3 steps each
    reference = simulate_chip(None, sampled, times, rtol=1e-12, atol=1e-14, method="LSODA")
    for name in ("drug_medium", "metabolite_medium"):
        np.testing.assert_allclose(result[name][0], reference[name], rtol=2e-5, atol=1e-9)
