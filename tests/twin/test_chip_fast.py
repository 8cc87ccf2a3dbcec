"""The one-chip fast path (plain-float rhs + odeint) is the same model as the reference path."""

from __future__ import annotations

import numpy as np

from twin.chip import Dose, MediaChange, Sample, simulate_chip
from twin.chip.liver import LIVER_SYSTEM, rhs, rhs_one


def test_scalar_rhs_equals_the_batched_rhs_at_random_states():
    rng = np.random.default_rng(5)
    for _ in range(50):
        x = rng.uniform(0.01, 20, 7)
        p = rng.uniform(0.05, 5, 9)
        c = rng.uniform(0.1, 100, 5)
        np.testing.assert_allclose(rhs_one(x, p, c), rhs(x[None], p[None], c[None])[0], rtol=1e-13, atol=1e-13)
    assert LIVER_SYSTEM.rhs_one is rhs_one


def test_odeint_path_agrees_with_a_tight_reference():
    events = [
        Dose(0.0, 10.0, 0.0),
        Sample(1.0, 0.05),
        Dose(24.0, 80.0, 0.01),
        Sample(30.0, 0.05),
        MediaChange(48.0, 1.0, 0.0),
        Sample(60.0, 0.05),
    ]
    times = np.linspace(0, 72, 145)
    params = {"vmax": 3.0, "km": 15.0, "ec50": 40.0}
    fast = simulate_chip(params, events, times, method="odeint")
    reference = simulate_chip(params, events, times, method="Radau", rtol=1e-11, atol=1e-13)
    for name in ("drug_medium", "metabolite_medium", "oxygen", "viability"):
        scale = np.max(np.abs(reference[name]))
        assert np.max(np.abs(fast[name] - reference[name])) <= 1e-6 * scale, name
