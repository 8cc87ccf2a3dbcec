"""Virtual chips: fractions that can be computed by hand, the nominal dry run at N = 1, the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from protocols.language.api import parse_protocol
from protocols.language.dry_run import dry_run
from protocols.language.interlock import parse_interlock
from protocols.language.timeline import first_held
from protocols.language.virtual_chips import VirtualChipsError, held_for, pooled, virtual_chips
from tests.protocols.conftest import EXAMPLES, LIVER4, protocol_text
from ui.cli.app import app

NO_VARIABILITY = dict.fromkeys(("ps", "vmax", "km", "kon", "koff", "kmax", "ec50", "hill", "ocr", "medium"), 0.0)


def _phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def test_a_dose_breaches_the_limit_in_the_fraction_the_fill_volume_predicts(one_chip):
    # 95 nmol in 10 uL into a chip filled with f·1 mL (f log-normal, median 1): the peak
    # 95/(f + 0.01) uM exceeds the 100 uM limit iff f < 0.94. A 0.4 mL sample then leaves
    # f + 0.01 − 0.4 mL, below the 0.5 mL minimum iff f < 0.89. Nominally (f = 1) neither happens.
    text = protocol_text(
        '[[steps]]\nkind = "dose"\namount = "95 nmol"\nvolume = "10 uL"\n\n'
        '[[steps]]\nkind = "sample"\nvolume = "400 uL"\nat = ["1 h"]\n\n'
        '[[steps]]\nkind = "wait"\nduration = "1 h"\n'
    )
    protocol = parse_protocol(text, one_chip)
    assert not dry_run(protocol, one_chip).problems
    cv, n = 0.12, 2000
    report = virtual_chips(
        protocol, one_chip, n, seed=7, between_chip_cv={**NO_VARIABILITY, "medium": cv}, prior_cv=0.0
    )
    sigma = math.sqrt(math.log1p(cv**2))
    [chip] = report.chips
    expected_over, expected_short = _phi(math.log(0.94) / sigma), _phi(math.log(0.89) / sigma)
    assert expected_over == pytest.approx(0.30, abs=0.01) and expected_short == pytest.approx(0.165, abs=0.01)
    assert chip.p_over_limit == pytest.approx(expected_over, abs=4 * report.standard_error(expected_over))
    assert chip.p_medium_runs_out == pytest.approx(expected_short, abs=4 * report.standard_error(expected_short))
    assert chip.peak_concentration.p50 == pytest.approx(95 / 1.01, rel=0.01)
    assert chip.limit_um == 100.0 and report.n_chips == n


def test_one_chip_without_variability_is_the_nominal_dry_run(one_chip):
    text = protocol_text(
        '[[steps]]\nkind = "dose"\namount = "20 nmol"\nvolume = "10 uL"\n\n'
        '[[steps]]\nkind = "sample"\nvolume = "50 uL"\nat = ["0.5 h", "2 h"]\n\n'
        '[[steps]]\nkind = "perfuse"\nflow = "5 uL/min"\nduration = "2 h"\n',
        interlocks='    "oxygen < 75 % for 30 min -> safe_state, alarm",\n    "oxygen < 60 % -> alarm",\n',
    )
    protocol = parse_protocol(text, one_chip)
    nominal = dry_run(protocol, one_chip)
    report = virtual_chips(protocol, one_chip, 1, between_chip_cv=NO_VARIABILITY, prior_cv=0.0)
    [chip] = report.chips
    peak, _ = nominal.peak_concentration_um["c1"]
    assert chip.peak_concentration.p50 == pytest.approx(peak, rel=1e-6)
    assert chip.min_medium.p50 == pytest.approx(nominal.min_medium_ml["c1"], rel=1e-12)
    assert report.duration_h == nominal.duration_h
    tripped = {t.interlock for t in nominal.trips}
    assert tripped == {"oxygen < 75 % for 1800 s -> safe_state, alarm"}
    assert chip.p_interlock == {
        "oxygen < 75 % for 1800 s -> safe_state, alarm": 1.0,
        "oxygen < 60 % -> alarm": 0.0,
    }
    assert report.p_run_stops == 1.0 and chip.p_over_limit == 0.0 and chip.p_medium_runs_out == 0.0
    sampled = [r for r in chip.readouts if r.name == "drug_medium"]
    assert [r.time_h for r in sampled] == [0.5, 2.0]
    assert sampled[0].spread.p05 == sampled[0].spread.p95 < peak


def test_the_vectorised_interlock_agrees_with_the_dry_runs_loop():
    rng = np.random.default_rng(3)
    times = np.unique(np.concatenate([np.arange(0, 6, 1 / 12), [0.37, 2.71]]))
    values = 70 + np.cumsum(rng.normal(0, 2.0, (200, times.size)), axis=1)
    for text in (
        "oxygen < 68 % for 30 min -> alarm",
        "oxygen >= 75 % -> safe_state",
        "oxygen > 72 % for 5 min -> alarm",
    ):
        interlock = parse_interlock(text)
        loop = np.array([first_held(times, row, interlock, "percent") is not None for row in values])
        assert np.array_equal(held_for(times, values, interlock, "percent"), loop), text
        assert 0 < loop.sum() < len(loop)  # the case is not trivial


def test_two_processes_give_the_single_batchs_answers(one_chip):
    text = protocol_text(
        '[[steps]]\nkind = "dose"\namount = "60 nmol"\nvolume = "10 uL"\n\n'
        '[[steps]]\nkind = "sample"\nvolume = "50 uL"\nat = ["1 h", "3 h"]\n',
        interlocks='    "oxygen < 60 % for 10 min -> safe_state, alarm",\n',
    )
    protocol = parse_protocol(text, one_chip)
    one = virtual_chips(protocol, one_chip, 40, seed=5)
    two = virtual_chips(protocol, one_chip, 40, seed=5, simulator=pooled(2))
    assert one.chips == two.chips and one.p_run_stops == two.p_run_stops
    assert 0 < one.chips[0].p_interlock["oxygen < 60 % for 600 s -> safe_state, alarm"] < 1  # not a trivial case


def test_chunks_give_the_single_batchs_answers(liver4, monkeypatch):
    from protocols.language import virtual_chips as module
    from protocols.language.api import load_protocol

    protocol = load_protocol(EXAMPLES / "overnight_dosing.toml", liver4)
    whole = virtual_chips(protocol, liver4, 10, seed=3)
    sizes = []

    def counted(runs, times):
        sizes.append(len(runs))
        return module.batched(runs, times)

    monkeypatch.setattr(module, "CHUNK", 7)  # chunks straddle the chips of the protocol
    chunked = virtual_chips(protocol, liver4, 10, seed=3, simulator=counted)
    assert sizes == [7] * 5 + [5] and chunked.chips == whole.chips and chunked.p_run_stops == whole.p_run_stops
    assert len(whole.chips[0].readouts) == 2 * 8 + 2  # drug and metabolite at 8 samples, oxygen, viability


def test_bad_requests_are_refused(one_chip):
    protocol = parse_protocol(protocol_text('[[steps]]\nkind = "wait"\nduration = "1 h"\n'), one_chip)
    with pytest.raises(VirtualChipsError, match="between 1 and"):
        virtual_chips(protocol, one_chip, 0)
    with pytest.raises(VirtualChipsError, match="not a liver_chip parameter"):
        virtual_chips(protocol, one_chip, 5, between_chip_cv={"vmaxx": 0.2})
    with pytest.raises(VirtualChipsError, match="liver_chip does not have"):
        virtual_chips(protocol, one_chip, 5, fit={"model": "liver_chip", "theta": {"cl": {"estimate": 1.0}}})


def test_cli_virtual_chips_json_and_a_bad_option():
    runner = CliRunner()
    args = ["protocol", "check", str(EXAMPLES / "overnight_dosing.toml"), "--rig", str(LIVER4)]
    fit = str(EXAMPLES.parent / "fits" / "midazolam_chip_fit.json")
    result = runner.invoke(app, [*args, "--virtual-chips", "50", "--seed", "2", "--fit", fit, "--json"])
    assert result.exit_code == 0, result.output
    virtual = json.loads(result.stdout)["virtual_chips"]
    assert virtual["n_chips"] == 50 and virtual["source"].startswith("fit record")
    assert [c["chip"] for c in virtual["chips"]] == ["chip1", "chip2", "chip3", "chip4"]
    chip3 = virtual["chips"][2]
    assert set(chip3["p_interlock"]) == {"oxygen < 20 % for 1800 s -> safe_state, alarm"}
    samples = [r for r in chip3["readouts"] if r["name"] == "drug_medium"]
    assert len(samples) == 8 and all(r["spread"]["p05"] <= r["spread"]["p50"] <= r["spread"]["p95"] for r in samples)
    table = runner.invoke(app, [*args, "--virtual-chips", "20"], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "Probability that an interlock trips" in table.stdout
    assert runner.invoke(app, [*args, "--virtual-chips", "20", "--seed", "-1"]).exit_code == 2
    forgot = runner.invoke(app, [*args, "--fit", fit, "--seed", "3"])
    assert forgot.exit_code == 2 and "--fit, --seed apply to virtual chips; add --virtual-chips N" in forgot.stderr
    coarse = runner.invoke(app, [*args, "--virtual-chips", "20", "--grid-min", "15", "--json"])
    assert coarse.exit_code == 0 and json.loads(coarse.stdout)["virtual_chips"]["n_chips"] == 20
    assert "--grid-min 0.0" in runner.invoke(app, [*args, "--virtual-chips", "20", "--grid-min", "0"]).stderr
    bad = runner.invoke(app, [*args, "--virtual-chips", "20", "--between-chip", "vmax=lots"])
    assert bad.exit_code == 2 and bad.stderr.strip().count("\n") == 0 and "--between-chip" in bad.stderr
