"""Bad input is refused with a message that says what to change."""

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
from twin.errors import InvalidValueError, UnitError, UnknownParameterError
from twin.units import Q_

TIMES = np.array([0.0, 24.0])


def test_sample_larger_than_the_medium():
    with pytest.raises(InvalidValueError, match=r"takes 1.5 mL but the medium holds only 1.1 mL.*smaller sample"):
        simulate_chip(None, [Dose(0.0, 1.0, 0.1), Sample(2.0, 1.5)], TIMES)


def test_sample_checked_against_the_volume_left_by_earlier_events():
    events = [Sample(1.0, 0.5), Sample(2.0, 0.4), Sample(3.0, 0.2)]
    with pytest.raises(InvalidValueError, match=r"Sample at 3 h takes 0.2 mL but the medium holds only 0.1 mL"):
        simulate_chips([ChipRun(None, events)], TIMES)


def test_negative_amounts_and_volumes():
    with pytest.raises(InvalidValueError, match=r"Dose.amount_nmol is -5 nmol; it must be zero or positive"):
        Dose(1.0, -5.0)
    with pytest.raises(InvalidValueError, match="Sample.volume_ml"):
        Sample(1.0, Q_(-10, "uL"))
    with pytest.raises(InvalidValueError, match="MediaChange.volume_ml is 0 mL; it must be positive"):
        MediaChange(1.0, 0.0)


def test_events_out_of_time_order():
    with pytest.raises(
        InvalidValueError, match=r"event 1 \(Dose at 2 h\) comes after one at 5 h; list events in time order"
    ):
        simulate_chip(None, [Sample(5.0, 0.1), Dose(2.0, 1.0)], TIMES)


def test_wrong_units_and_unknown_names():
    with pytest.raises(UnitError, match="Dose.amount_nmol"):
        Dose(1.0, Q_(1.0, "mL"))
    with pytest.raises(UnknownParameterError, match="its parameters are: ps, vmax"):
        simulate_chip({"vmx": 1.0}, [], TIMES)
    with pytest.raises(UnknownParameterError, match="its constants are: V_m0"):
        simulate_chip(None, [], TIMES, constants={"V_m": 2.0})
    with pytest.raises(InvalidValueError, match="has no medium|targets medium 'reservoir'"):
        simulate_chip(None, [Dose(1.0, 1.0, medium="reservoir")], TIMES)
    with pytest.raises(InvalidValueError, match="choose from: drug_medium"):
        simulate_chip(None, [], TIMES, observables=["drug"])


def test_non_positive_parameters_and_bad_times():
    with pytest.raises(InvalidValueError, match="parameter km is -1 uM; every parameter must be positive"):
        simulate_chip({"km": -1.0}, [], TIMES)
    with pytest.raises(InvalidValueError, match="increasing order"):
        simulate_chip(None, [], np.array([5.0, 1.0]))
    with pytest.raises(InvalidValueError, match="takes 9 parameters"):
        simulate_chip([1.0, 2.0], [], TIMES)


def test_stepper_refuses_events_not_due_and_backward_steps():
    state = initial_state()
    with pytest.raises(InvalidValueError, match="advance the chip to the event's time first"):
        apply_event(state, Dose(3.0, 1.0))
    with pytest.raises(InvalidValueError, match="only be advanced forward"):
        advance(state, -1.0)
    with pytest.raises(InvalidValueError, match="take a smaller sample"):
        apply_event(state, Sample(0.0, 2.0))
