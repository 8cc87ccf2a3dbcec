"""Shared fixtures: the shipped four-chip rig, and a one-chip rig small enough to calculate by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocols.language.rig_view import ChannelView, ChipView, InstrumentView, SimpleRig, load_rig_view
from twin.units import Q_

REPO = Path(__file__).resolve().parents[2]
LIVER4 = REPO / "examples" / "rigs" / "liver4.toml"
EXAMPLES = REPO / "examples" / "protocols"

HEADER = """[protocol]
name = "test"
chips = ["c1"]

[drug]
name = "acetaminophen"
molecular_weight = "151.16 g/mol"
stock = "1 mM"
"""


@pytest.fixture(scope="session")
def liver4():
    return load_rig_view(LIVER4)


@pytest.fixture
def one_chip() -> SimpleRig:
    """One 1 mL chip (limit 100 uM, min medium 0.5 mL), a 1 mM syringe pump, an oxygen and a pressure channel."""
    chip = ChipView(
        "c1",
        Q_(1.0, "mL"),
        min_medium_volume=Q_(0.5, "mL"),
        max_concentration=Q_(100, "uM"),
        max_dose_volume=Q_(0.2, "mL"),
        max_flow=Q_(100, "uL/min"),
    )
    pump = InstrumentView("p1", "syringe_pump", Q_(0.2, "mL"), Q_(200, "uL/min"), ("c1",), Q_(1000, "uM"))
    channels = {
        "c1_o2": ChannelView("c1_o2", "percent", "oxygen_air_saturation", "c1", "do1", "oxygen"),
        "inlet_pressure": ChannelView("inlet_pressure", "kPa", "pressure", None, "pressure"),
    }
    return SimpleRig("one", {"c1": chip}, {"p1": pump}, channels)


def protocol_text(steps: str, interlocks: str = "", header: str = HEADER) -> str:
    safety = f"\n[safety]\ninterlocks = [\n{interlocks}]\n" if interlocks else ""
    return header + safety + "\n" + steps
