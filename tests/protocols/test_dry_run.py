"""Dry-run figures against hand calculations on a one-chip rig (1 mL medium, 1 mM syringe)."""

from __future__ import annotations

import pytest

from protocols.language.api import load_protocol, parse_protocol
from protocols.language.dry_run import dry_run
from tests.protocols.conftest import EXAMPLES, protocol_text


def _run(one_chip, steps: str, interlocks: str = ""):
    return dry_run(parse_protocol(protocol_text(steps, interlocks), one_chip), one_chip)


def test_single_dose_peak_is_amount_over_medium_volume(one_chip):
    report = _run(
        one_chip,
        '[[steps]]\nkind = "perfuse"\nflow = "5 uL/min"\nduration = "1 h"\n\n'
        '[[steps]]\nkind = "dose"\namount = "10 nmol"\nvolume = "10 uL"\n\n'
        '[[steps]]\nkind = "wait"\nduration = "2 h"\n',
    )
    peak, at = report.peak_concentration_um["c1"]
    assert peak == pytest.approx(10.0 / 1.01, rel=1e-9) and at == pytest.approx(1.0)
    assert report.duration_h == pytest.approx(3.0)
    assert report.pump_volume_ml == {"p1": pytest.approx(0.010)}
    assert report.dosed_amount_nmol["c1"] == pytest.approx(10.0)
    assert report.medium_ml["c1"] == [(0.0, 1.0), (1.0, pytest.approx(1.01))]
    assert not report.problems and not report.trips


def test_concentration_dose_from_the_stock(one_chip):
    report = _run(one_chip, '[[steps]]\nkind = "dose"\nconcentration = "10 uM"\n')
    amount = 10.0 * 1.0 / (1 - 10.0 / 1000.0)  # C·V / (1 − C/stock): the added liquid counts
    assert report.dosed_amount_nmol["c1"] == pytest.approx(amount)
    assert report.pump_volume_ml["p1"] == pytest.approx(amount / 1000.0)
    assert report.peak_concentration_um["c1"][0] == pytest.approx(10.0)


def test_repeats_are_expanded_and_samples_counted(one_chip):
    report = _run(
        one_chip,
        '[[steps]]\nkind = "repeat"\ncount = 3\n\n'
        '[[steps.steps]]\nkind = "sample"\nvolume = "20 uL"\nat = ["0 h", "1 h", "2 h"]\n\n'
        '[[steps.steps]]\nkind = "wait"\nduration = "1 h"\n',
    )
    assert report.duration_h == pytest.approx(9.0)  # 3 × (2 h of samples + 1 h)
    assert report.sampled_volume_ml["c1"] == pytest.approx(9 * 0.020)
    assert report.min_medium_ml["c1"] == pytest.approx(1.0 - 9 * 0.020)
    assert [t for t, _ in report.medium_ml["c1"]][1:4] == pytest.approx([0.0, 1.0, 2.0])


def test_a_sample_that_would_drain_the_medium_is_an_error(one_chip):
    text = protocol_text('[[steps]]\nkind = "sample"\nvolume = "200 uL"\nat = ["0 h", "1 h", "2 h"]\n')
    report = dry_run(parse_protocol(text, one_chip), one_chip)
    line = text.splitlines().index("[[steps]]") + 1
    assert len(report.problems) == 1 and report.problems[0].line == line
    assert (
        "sample of 200 uL at 2 h would leave chip 'c1' with 400 uL of medium (minimum 500 uL)"
        in report.problems[0].message
    )
    assert report.sampled_volume_ml["c1"] == pytest.approx(0.4)


def test_oxygen_interlock_stop_is_predicted_in_its_step(one_chip):
    # liver_chip defaults: steady-state O2 = 100 − ocr/kla = 100 − 150/5 = 70 %
    text = protocol_text(
        '[[steps]]\nkind = "wait"\nduration = "10 min"\n\n'
        '[[steps]]\nkind = "perfuse"\nflow = "5 uL/min"\nduration = "2 h"\n',
        interlocks='    "oxygen < 75 % for 30 min -> safe_state, alarm",\n    "oxygen < 60 % -> alarm",\n',
    )
    report = dry_run(parse_protocol(text, one_chip), one_chip)
    [trip] = report.trips
    assert (trip.chip, trip.channel, trip.step, trip.stops) == ("c1", "c1_o2", "perfuse", True)
    assert trip.time_h == pytest.approx(0.5) and trip.value == pytest.approx(70.0)
    assert trip.line == text.splitlines().index('kind = "perfuse"')
    assert report.stops == [trip]


def test_hold_until_waits_for_the_twin_or_times_out(one_chip):
    report = _run(
        one_chip,
        '[[steps]]\nkind = "hold_until"\ncondition = "oxygen > 65 % for 10 min"\ntimeout = "1 h"\n'
        '\n[[steps]]\nkind = "hold_until"\ncondition = "oxygen > 90 %"\ntimeout = "1 h"\n',
    )
    assert report.duration_h == pytest.approx(10 / 60 + 1.0)
    assert len(report.holds) == 1 and "predicted to time out after 1 h (then abort)" in report.holds[0]


def test_loop_steps_take_the_worst_case(one_chip):
    steps = (
        '[[steps]]\nkind = "calibrate"\nparameters = ["vmax", "km"]\n\n'
        '[[steps]]\nkind = "propose"\ndoses = ["5 uM", "60 uM"]\nschedules = [["1 h"], ["1 h", "2 h"]]\n'
        'sample_volume = "20 uL"\ndose_volume = "10 uL"\n\n'
        '[[steps]]\nkind = "approve"\nmax_dose = "50 uM"\nmax_sampled_volume_per_chip = "200 uL"\n\n'
        '[[steps]]\nkind = "execute"\n'
    )
    report = _run(one_chip, steps)
    assert report.peak_concentration_um["c1"][0] == pytest.approx(60.0)  # the largest dose level
    assert report.dosed_amount_nmol["c1"] == pytest.approx(60.0 * 1.01)
    assert report.sampled_volume_ml["c1"] == pytest.approx(0.040) and report.duration_h == pytest.approx(2.0)
    assert len(report.holds) == 1 and "would hold the chips until a person approves" in report.holds[0]
    assert any("worst case" in a for a in report.assumptions)


def test_doses_that_add_up_above_the_chip_limit_are_caught(one_chip):
    text = protocol_text(
        '[[steps]]\nkind = "dose"\nconcentration = "60 uM"\n\n[[steps]]\nkind = "dose"\nconcentration = "60 uM"\n'
    )
    report = dry_run(parse_protocol(text, one_chip), one_chip)
    [problem] = report.problems
    assert "above its limit 100" in problem.message and problem.line == len(text.splitlines()) - 2


def test_shipped_examples_dry_run_cleanly(liver4):
    loop = dry_run(load_protocol(EXAMPLES / "closed_loop_liver.toml", liver4), liver4)
    assert not loop.problems and not loop.trips
    assert loop.duration_h == pytest.approx(2 + 10 / 60 + 6 + 3 * 12)  # the O2 hold is met after its 10 min
    assert loop.sampled_volume_ml["chip1"] == pytest.approx(0.060 + 3 * 0.080)
    overnight = dry_run(load_protocol(EXAMPLES / "overnight_dosing.toml", liver4), liver4)
    assert overnight.duration_h == pytest.approx(24.0) and not overnight.problems
    assert overnight.peak_concentration_um["chip3"][0] == pytest.approx(30.0 / 1.03)
