"""Batched forward sensitivities (Rodas4 on the augmented system) against central differences,
on every chip model, each chip with its own schedule and its own output times."""

from __future__ import annotations

import numpy as np
import pytest

from twin.chip import ChipRun, Dose, MediaChange, Sample, sensitivities, simulate_chips
from twin.chip.batch_sensitivity import _Augmented
from twin.chip.fit_sensitivities import chips_sensitivities
from twin.chip.liver import LIVER_PARAMETERS, LIVER_SYSTEM
from twin.chip.registry import system_for
from twin.errors import InvalidValueError

STEP = 1e-4  # on the log scale
LIVER_BASE = {p.name: p.default for p in LIVER_PARAMETERS} | {"ec50": 20.0}  # a dose that hurts: kill terms live
LIVER_RUNS = [
    ChipRun(LIVER_BASE, [Dose(0.0, 80.0, 0.1), Sample(3.0, 0.1), Dose(6.0, 40.0, 0.05), MediaChange(12.0, 1.0, 5.0)]),
    ChipRun(
        LIVER_BASE | {"vmax": 5.0, "km": 3.0}, [Dose(0.0, 150.0), Sample(2.0, 0.02), Sample(24.0, 0.02)], {"V_m0": 2.0}
    ),
]
LIVER_TIMES = [
    np.array([0.5, 3.0, 3.0 - 1e-9, 6.0, 9.0, 12.0, 18.0])[[0, 2, 1, 3, 4, 5, 6]],
    np.array([0.0, 1.0, 2.0 - 1e-9, 2.0, 8.0, 24.0 - 1e-9, 30.0]),
]
MULTI_EVENTS = [
    Dose(0.0, 10.0, 0.0, medium="apical"),
    Sample(6.0, 0.05, medium="reservoir"),
    Dose(12.0, 5.0, 0.02, medium="reservoir"),
]
MULTI_FREE = ["vmax_liver", "ps_liver", "clr_kidney", "papp_area"]


def _central_differences(runs, times, free, model, step=STEP, rtol=1e-10):
    """∂observable/∂log p by central differences: every chip and sign in one tight batched run per chip
    (truncation error ~step², integration error ~rtol/step, relative)."""
    out = []
    for run, t in zip(runs, times):
        system = system_for(model)
        base = {p.name: p.default for p in system.spec.parameters} | dict(run.params or {})
        perturbed = [
            ChipRun({**base, name: base[name] * np.exp(sign * step)}, run.events, run.constants)
            for name in free
            for sign in (1, -1)
        ]
        result = simulate_chips(perturbed, t, model=model, rtol=rtol, atol=rtol * 1e-2)
        out.append(
            {
                name: np.stack(
                    [(result[name][2 * j] - result[name][2 * j + 1]) / (2 * step) for j in range(len(free))], axis=-1
                )
                for name in result
                if name != "time_h"
            }
        )
    return out


# multi_organ (its numerics by complex steps of the spec's formulas: ~10× the cost of liver_chip's a step)
# is solved at rtol 1e-7 and differenced with a step of 1e-3 at rtol 1e-8: both errors stay below
# 1 % of the tolerances asserted (measured: the worst is 0.4 % of them), at a fifth of the time
@pytest.mark.parametrize(
    "model, runs, times, free, rtol, reference",
    [
        ("liver_chip", LIVER_RUNS, LIVER_TIMES, [p.name for p in LIVER_PARAMETERS], 1e-8, (STEP, 1e-10)),
        (
            "multi_organ",
            [ChipRun(None, MULTI_EVENTS), ChipRun({"vmax_liver": 3.0}, MULTI_EVENTS[:1])],
            [np.array([0.5, 6.0, 12.0, 24.0]), np.array([1.0, 4.0, 12.0])],
            MULTI_FREE,
            1e-7,
            (1e-3, 1e-8),
        ),
    ],
)
def test_batched_sensitivities_match_central_differences(model, runs, times, free, rtol, reference):
    results = chips_sensitivities(runs, times, free, model=model, rtol=rtol, atol=rtol * 1e-3)
    numeric = _central_differences(runs, times, free, model, *reference)
    for chip, (result, reference) in enumerate(zip(results, numeric)):
        assert result.parameter_names == tuple(free)
        for observable, exact in result.d_dlogp.items():
            scale = np.max(np.abs(result.values[observable])) + 1e-12  # zeros compared on the observable's scale
            np.testing.assert_allclose(
                exact,
                reference[observable],
                rtol=1e-4,
                atol=1e-5 * scale,
                err_msg=f"chip {chip}: d {observable} / d log p",
            )


def test_batched_sensitivities_equal_the_single_chip_reference_path():
    """Same numbers as ``twin.chip.sensitivities`` (scipy BDF on the augmented system), chip by chip."""
    results = chips_sensitivities(LIVER_RUNS, LIVER_TIMES, ["vmax", "km", "kon"], rtol=1e-9, atol=1e-12)
    for run, t, result in zip(LIVER_RUNS, LIVER_TIMES, results):
        order = np.argsort(t, kind="stable")
        reference = sensitivities(run.params, run.events, t[order], run.constants, rtol=1e-10, atol=1e-12)
        columns = [reference.parameter_names.index(n) for n in ("vmax", "km", "kon")]
        for name, values in result.values.items():
            np.testing.assert_allclose(values[order], reference.values[name], rtol=1e-7, atol=1e-12)
            scale = np.max(np.abs(reference.d_dlogp[name])) + 1e-12
            np.testing.assert_allclose(
                result.d_dlogp[name][order], reference.d_dlogp[name][:, columns], rtol=1e-6, atol=1e-7 * scale
            )


def test_complex_step_pieces_equal_the_analytic_jacobians():
    """The stage right-hand side J·S + ∂f/∂p·p by complex step equals the hand-written Jacobians."""
    rng = np.random.default_rng(3)
    p = np.tile([p.default for p in LIVER_PARAMETERS], (3, 1)) * np.exp(rng.normal(0, 0.3, (3, 9)))
    c = np.tile([1.0, 0.0034, 1.0, 100.0, 5.0], (3, 1))
    x = LIVER_SYSTEM.initial(p, c) + np.abs(rng.normal(0, 1, (3, 7))) * [20, 0.05, 5, 3, 0, 0, 0]
    s = rng.normal(0, 1, (3, 7, 4))
    augmented = _Augmented(LIVER_SYSTEM, p, c, np.array([1, 2, 3, 8]))
    assert augmented.complex_safe
    f, sens = augmented.pieces(x, s, np.arange(3))
    expected = LIVER_SYSTEM.jac(x, p, c) @ s + LIVER_SYSTEM.dfdp(x, p, c)[:, :, [1, 2, 3, 8]] * p[:, None, [1, 2, 3, 8]]
    np.testing.assert_allclose(f, LIVER_SYSTEM.rhs(x, p, c), rtol=1e-14)
    np.testing.assert_allclose(sens, expected, rtol=1e-10, atol=1e-12)


def test_unknown_parameter_and_unsorted_times_are_refused():
    with pytest.raises(InvalidValueError, match="no parameter 'vmx'"):
        chips_sensitivities(LIVER_RUNS[:1], LIVER_TIMES[:1], ["vmx"])
    with pytest.raises(InvalidValueError, match="increasing order"):
        chips_sensitivities(LIVER_RUNS[:1], [np.array([2.0, 1.0])], ["vmax"])


def test_chips_in_lockstep_take_the_same_steps_and_the_same_answers(monkeypatch):
    """Copies of a chip at nearby parameters, in one lockstep group, share every step (the covariance
    step differences them); a chip outside the group keeps its own steps; the values stay those of
    solving each chip alone."""
    from twin.chip import batch_sensitivity

    steps: list[tuple[np.ndarray, np.ndarray]] = []
    original = batch_sensitivity.rodas4_sensitivity_step

    def recording(aug, x, s, chips, h):
        steps.append((chips.copy(), h.copy()))
        return original(aug, x, s, chips, h)

    monkeypatch.setattr(batch_sensitivity, "rodas4_sensitivity_step", recording)
    run, other = LIVER_RUNS
    copies = [ChipRun(run.params | {"vmax": run.params["vmax"] * factor}, run.events) for factor in (1.0, 1.3, 0.7)]
    times = [LIVER_TIMES[0]] * 3 + [LIVER_TIMES[1]]
    together = chips_sensitivities([*copies, other], times, ["vmax", "km"], rtol=1e-6, atol=1e-9, lockstep=[0, 0, 0, 1])
    shared = [h[np.isin(chips, [0, 1, 2])] for chips, h in steps if np.isin(chips, [0, 1, 2]).any()]
    assert all(np.all(h == h[0]) for h in shared) and len(shared) > 20
    assert any(not np.all(h[np.isin(chips, [0, 1, 2])] == h[chips == 3]) for chips, h in steps if 3 in chips)
    steps.clear()
    alone = chips_sensitivities(copies[1:2], times[:1], ["vmax", "km"], rtol=1e-6, atol=1e-9)[0]
    for name, values in alone.values.items():
        np.testing.assert_allclose(together[1].values[name], values, rtol=1e-5, atol=1e-9)
    with pytest.raises(InvalidValueError, match="lockstep must share"):
        chips_sensitivities([run, other], LIVER_TIMES, ["vmax"], lockstep=[0, 0])


def test_steps_controlled_on_the_states_alone_keep_the_sensitivities_accurate():
    """What fits use (``control_sensitivities=False``, CVODES' default): the sensitivities ride on the
    states' steps; at the fits' rtol 1e-5 they stay within 1e-4 of their scale of a tight solution."""
    free = ["vmax", "km", "kon", "ec50"]
    loose = chips_sensitivities(LIVER_RUNS, LIVER_TIMES, free, rtol=1e-5, atol=1e-8, control_sensitivities=False)
    tight = chips_sensitivities(LIVER_RUNS, LIVER_TIMES, free, rtol=1e-9, atol=1e-12)
    for chip, (fast, reference) in enumerate(zip(loose, tight)):
        for name, values in reference.values.items():
            scale = np.max(np.abs(values)) + 1e-12
            np.testing.assert_allclose(fast.values[name], values, rtol=1e-4, atol=1e-6 * scale, err_msg=f"chip {chip}")
            d_scale = np.max(np.abs(reference.d_dlogp[name])) + 1e-12
            np.testing.assert_allclose(
                fast.d_dlogp[name], reference.d_dlogp[name], rtol=0, atol=1e-4 * d_scale, err_msg=f"chip {chip} d{name}"
            )
