"""Bad protocols are rejected before anything runs, each problem with its line and a fix.

Every case marks the offending line with ``# <-``; the error must name exactly that line.
"""

from __future__ import annotations

import pytest

from protocols.errors import ProtocolFileError
from protocols.language.api import parse_protocol
from tests.protocols.conftest import protocol_text

CASES = {
    "unknown step kind": (
        '[[steps]]\nkind = "dosee"  # <-\n',
        "unknown step kind 'dosee'; fix: use one of prime, perfuse, dose",
    ),
    "missing unit": (
        '[[steps]]\nkind = "dose"\nconcentration = 10  # <-\nvolume = "10 uL"\n',
        "dose concentration 10 has no unit; fix: write '10 uM'",
    ),
    "unit of the wrong kind": (
        '[[steps]]\nkind = "perfuse"\nflow = "5 uL/min"\nduration = "10 uL"  # <-\n',
        "perfuse duration '10 uL' is a volume, not a duration",
    ),
    "unknown unit": ('[[steps]]\nkind = "wait"\nduration = "2 fortnights-ish"  # <-\n', "not a quantity pint can read"),
    "dose above the chip's concentration": (
        '[[steps]]\nkind = "dose"\nconcentration = "150 uM"  # <-\n',
        "dose gives chip 'c1' 150 uM, above its limit 100",
    ),
    "dose above the pump's volume": (
        '[[steps]]\nkind = "dose"\namount = "5 nmol"\nvolume = "300 uL"  # <-\n',
        "dose volume 300 uL is above pump 'p1''s maximum 0.2 ml",
    ),
    "unknown pump": (
        '[[steps]]\nkind = "dose"\namount = "5 nmol"\npump = "p7"  # <-\n',
        "dose step uses pump 'p7', which rig 'one' lacks; fix: use one of p1",
    ),
    "chip the protocol does not list": (
        '[[steps]]\nkind = "dose"\namount = "5 nmol"\nchips = ["c2"]  # <-\n',
        "uses chip 'c2', which [protocol] chips does not list",
    ),
    "approve bounds without units": (
        '[[steps]]\nkind = "propose"\ndoses = ["10 uM"]\n\n[[steps]]\nkind = "approve"\n'
        'max_dose = 50  # <-\nmax_sampled_volume_per_chip = "200 uL"\n',
        "approve max_dose 50 has no unit; fix: write '50 uM'",
    ),
    "auto approval without bounds": (
        '[[steps]]\nkind = "propose"\ndoses = ["10 uM"]\n\n[[steps]]  # <-\nkind = "approve"\nmax_dose = "50 uM"\n',
        "auto_within_bounds needs max_sampled_volume_per_chip",
    ),
    "unknown field": (
        '[[steps]]\nkind = "wait"\nduration = "1 h"\nchips = ["c1"]  # <-\n',
        "wait step has no field 'chips'",
    ),
    "nested step in a repeat": (
        '[[steps]]\nkind = "repeat"\ncount = 2\n\n[[steps.steps]]\nkind = "wait"\nduration = 3  # <-\n',
        "wait duration 3 has no unit; fix: write '3 h'",
    ),
    "hold on a missing channel": (
        '[[steps]]\nkind = "hold_until"  \ncondition = "teer > 100 ohm for 1 h"  # <-\ntimeout = "2 h"\n',
        "rig 'one' has no channel 'teer'",
    ),
    "calibrate an unknown parameter": (
        '[[steps]]\nkind = "calibrate"\nparameters = ["vmax", "kcat"]  # <-\n',
        "calibrate: model liver_chip has no parameter 'kcat'",
    ),
    "invalid TOML": ('[[steps]]\nkind = "wait  # <-\n', "not valid TOML"),
}
INTERLOCK_CASES = {
    "interlock on a missing channel": ('    "flow > 3 uL/min -> alarm",  # <-\n', "has no channel 'flow'"),
    "interlock threshold in the wrong unit": (
        '    "pressure > 20 uL for 10 s -> alarm",  # <-\n',
        "does not convert to channel 'inlet_pressure' unit kPa",
    ),
    "interlock without a unit": ('    "pressure > 250 for 10 s -> alarm",  # <-\n', "threshold '250' has no unit"),
}
WAIT = '[[steps]]\nkind = "wait"\nduration = "1 h"\n'


def _marked_line(text: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if "# <-" in line)


def _errors(text: str, rig) -> ProtocolFileError:
    with pytest.raises(ProtocolFileError) as caught:
        parse_protocol(text, rig)
    return caught.value


@pytest.mark.parametrize("steps, expected", CASES.values(), ids=CASES.keys())
def test_bad_step_names_its_line(one_chip, steps, expected):
    text = protocol_text(steps)
    error = _errors(text, one_chip)
    prefix = f"protocol.toml line {_marked_line(text)}: "
    assert any(line.startswith(prefix) and expected in line for line in str(error).splitlines()), str(error)


@pytest.mark.parametrize("rule, expected", INTERLOCK_CASES.values(), ids=INTERLOCK_CASES.keys())
def test_bad_interlock_names_its_line(one_chip, rule, expected):
    text = protocol_text(WAIT, interlocks='    "oxygen < 20 % for 30 min -> alarm",\n' + rule)
    error = _errors(text, one_chip)
    assert f"protocol.toml line {_marked_line(text)}: " in str(error) and expected in str(error), str(error)


def test_chip_the_rig_lacks(one_chip):
    text = protocol_text(WAIT).replace('chips = ["c1"]', 'chips = ["c1", "c9"]  # <-')
    assert f"line {_marked_line(text)}: chip 'c9' is not on rig 'one'" in str(_errors(text, one_chip))


def test_every_problem_is_reported_in_line_order(one_chip):
    steps = (
        CASES["unknown step kind"][0]
        + "\n"
        + CASES["missing unit"][0]
        + "\n"
        + CASES["unknown pump"][0]
        + "\n"
        + CASES["unit of the wrong kind"][0]
    )
    text = protocol_text(steps, interlocks=INTERLOCK_CASES["interlock on a missing channel"][0])
    error = _errors(text, one_chip)
    marked = [n for n, line in enumerate(text.splitlines(), start=1) if "# <-" in line]
    assert [p.line for p in error.problems] == marked
    assert len(str(error).splitlines()) == len(marked)
    assert all(line.startswith("protocol.toml line ") and "; fix: " in line for line in str(error).splitlines())


def test_without_a_rig_only_the_language_is_checked():
    text = protocol_text('[[steps]]\nkind = "dose"\nconcentration = "150 uM"\nvolume = "10 uL"\n')
    assert parse_protocol(text).steps[0].concentration.magnitude == 150
