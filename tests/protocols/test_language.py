"""The protocol language: the shipped examples parse, and TOML and Python build the same protocol."""

from __future__ import annotations

import pytest

from protocols.errors import FieldError, ProtocolError, ProtocolFileError
from protocols.language.api import (
    Approve,
    Calibrate,
    Dose,
    Drug,
    Execute,
    HoldUntil,
    MediaChange,
    Propose,
    Protocol,
    Repeat,
    Sample,
    Wait,
    check_protocol,
    expand,
    load_protocol,
    parse_condition,
    parse_interlock,
    parse_protocol,
)
from tests.protocols.conftest import EXAMPLES
from twin.units import Q_


def test_closed_loop_example_parses_with_three_rounds(liver4):
    protocol = load_protocol(EXAMPLES / "closed_loop_liver.toml", liver4)
    assert protocol.chips == ("chip1", "chip2", "chip3", "chip4") and protocol.clock_rate == 3600
    kinds = [step.kind for step in expand(protocol.steps)]
    assert kinds.count("calibrate") == kinds.count("propose") == kinds.count("approve") == kinds.count("execute") == 3
    assert [str(i) for i in protocol.interlocks] == [
        "pressure > 250 mbar for 10 s -> safe_state, alarm",
        "oxygen < 20 % for 1800 s -> safe_state, alarm",
    ]
    approve = next(s for s in expand(protocol.steps) if isinstance(s, Approve))
    assert approve.max_dose == Q_(50, "uM") and approve.max_sampled_volume_per_chip == Q_(200, "uL")


def test_overnight_example_is_the_same_protocol_as_its_python_twin(liver4):
    from_file = load_protocol(EXAMPLES / "overnight_dosing.toml", liver4)
    block = [
        Dose(concentration="10 uM", chips=["chip1", "chip2"]),
        Dose(amount="30 nmol", chips=["chip3", "chip4"]),
        Sample(volume="20 uL", assay="lcms", at=["0.25 h", "1 h", "4 h", "11.5 h"]),
        Wait(duration="30 min"),
        MediaChange(volume="1 mL"),
    ]
    in_python = Protocol(
        name="overnight dosing",
        drug=Drug("acetaminophen", "151.16 g/mol", stock="1 mM"),
        chips=["chip1", "chip2", "chip3", "chip4"],
        clock_rate=3600,
        steps=[Repeat(count=2, steps=block)],
        interlocks=[
            "pressure > 250 mbar for 10 s -> safe_state, alarm",
            "oxygen < 20 % for 30 min -> safe_state, alarm",
        ],
    )
    assert check_protocol(in_python, liver4) == from_file


def test_step_lines_point_at_their_tables(liver4):
    protocol = load_protocol(EXAMPLES / "closed_loop_liver.toml", liver4)
    text = (EXAMPLES / "closed_loop_liver.toml").read_text().splitlines()
    for step in expand(protocol.steps):
        assert text[step.line - 1].strip() in ("[[steps]]", "[[steps.steps]]")
        assert f'kind = "{step.kind}"' in text[step.line]


def test_python_api_converts_units_and_checks_them():
    dose = Dose(concentration=Q_(0.01, "mM"), volume="10 µL")
    assert dose.concentration == Q_(10, "uM") and dose.volume == Q_(0.01, "mL")
    with pytest.raises(FieldError, match="dose concentration 10 has no unit; fix: write '10 uM'"):
        Dose(concentration=10)
    with pytest.raises(FieldError, match="exactly one of concentration or amount"):
        Dose(concentration="1 uM", amount="1 nmol")
    with pytest.raises(FieldError, match="wait duration '2 mL' is a volume, not a duration"):
        Wait(duration="2 mL")
    assert HoldUntil(condition="oxygen > 80 % for 10 min", timeout="1 h").condition.for_s == 600


def test_interlock_syntax():
    interlock = parse_interlock("pressure > 250 mbar for 10 s -> safe_state, alarm")
    assert (interlock.channel, interlock.op, interlock.threshold, interlock.for_s) == (
        "pressure",
        ">",
        Q_(250, "mbar"),
        10,
    )
    assert interlock.actions == ("safe_state", "alarm") and interlock.stops
    assert not parse_interlock("oxygen < 20 % → alarm").stops
    assert parse_condition("chip1_o2 >= 80 %").holds(80.0, "percent")
    for bad, message in [
        ("pressure > 250 -> alarm", "has no unit"),
        ("pressure > 250 mbar -> boom", "unknown action"),
        ("pressure 250 mbar -> alarm", "CHANNEL OP THRESHOLD"),
        ("pressure > 1 mbar", "one '->'"),
        ("pressure > 250 mbar for 10 -> alarm", "duration '10' has no unit"),
    ]:
        with pytest.raises(FieldError, match=message):
            parse_interlock(bad)


def test_python_protocol_checked_against_the_rig_names_what_is_wrong(liver4):
    protocol = Protocol(
        name="p",
        drug=Drug("d", "100 g/mol"),
        chips=["chip1", "chip9"],
        steps=[Propose(doses=["10 uM"]), Execute(), Calibrate(parameters=["vmax", "nope"])],
    )
    with pytest.raises(ProtocolFileError) as caught:
        check_protocol(protocol, liver4)
    text = str(caught.value)
    assert "chip 'chip9' is not on rig 'liver4'" in text and "no parameter 'nope'" in text
    assert "execute runs a proposal no approve step has approved" in text
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, ProtocolError)


def test_wait_and_perfuse_need_their_fields():
    with pytest.raises(ProtocolFileError, match=r"line 9: perfuse needs 'duration'; fix: add duration = '2 h'"):
        parse_protocol(HEADER_ONLY + '[[steps]]\nkind = "perfuse"\nflow = "5 uL/min"\n')


HEADER_ONLY = '[protocol]\nname = "x"\nchips = ["c1"]\n\n[drug]\nname = "d"\nmolecular_weight = "1 g/mol"\n\n'
