"""Forward sensitivities ∂observable/∂log p against central finite differences."""

from __future__ import annotations

import numpy as np

from twin.chip import ChipRun, Dose, MediaChange, Sample, sensitivities, simulate_chips
from twin.chip.liver import LIVER_PARAMETERS

EVENTS = [Dose(0.0, 80.0, 0.1), Sample(3.0, 0.1), Dose(6.0, 40.0, 0.05), MediaChange(12.0, 1.0, 5.0)]
TIMES = np.array([0.5, 3.0, 6.0, 9.0, 12.0, 18.0])
STEP = 1e-4  # on the log scale


def test_sensitivities_match_central_differences_on_the_log_scale():
    base = {p.name: p.default for p in LIVER_PARAMETERS}
    result = sensitivities(base, EVENTS, TIMES, rtol=1e-10, atol=1e-12)
    assert result.parameter_names == tuple(base)
    # all perturbed chips in one tight batched run: row 2j is log p_j + STEP, row 2j+1 is − STEP
    runs = [
        ChipRun({**base, name: base[name] * np.exp(sign * STEP)}, EVENTS)
        for name in result.parameter_names
        for sign in (1, -1)
    ]
    perturbed = simulate_chips(runs, TIMES, rtol=1e-11, atol=1e-13)
    for j, name in enumerate(result.parameter_names):
        for observable, values in result.values.items():
            numeric = (perturbed[observable][2 * j] - perturbed[observable][2 * j + 1]) / (2 * STEP)
            scale = np.max(np.abs(values)) + 1e-12  # zero sensitivities are compared on the observable's scale
            np.testing.assert_allclose(
                result.d_dlogp[observable][:, j],
                numeric,
                rtol=1e-4,
                atol=1e-5 * scale,
                err_msg=f"d {observable} / d log {name}",
            )


def test_some_sensitivities_are_structurally_zero_and_others_not():
    result = sensitivities(None, EVENTS, TIMES, observables=["drug_medium", "oxygen"])
    names = list(result.parameter_names)
    assert set(result.values) == {"drug_medium", "oxygen"}
    # oxygen use moves no drug (zero up to the Newton-iteration round-off of the augmented solve)
    assert np.all(np.abs(result.d_dlogp["drug_medium"][:, names.index("ocr")]) < 1e-15)
    assert np.all(result.d_dlogp["oxygen"][:, names.index("ocr")] < 0)  # more consumption, less oxygen
    dc_dkon = result.d_dlogp["drug_medium"][:, names.index("kon")]
    assert np.all(dc_dkon[:4] < 0)  # before the media change at 12 h, PDMS uptake lowers medium drug
    assert dc_dkon[4] == 0.0  # the fresh medium's drug is set by the media change, not by kon
    assert dc_dkon[5] > 0  # afterwards the PDMS gives back what it took up
