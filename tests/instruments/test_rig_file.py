"""Rig and scenario files: every kind of mistake is a ConfigError naming the line to fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from instruments.errors import ConfigError
from instruments.rig.model import load_rig, parse_rig
from instruments.sim.scenario import load_scenario, parse_scenario
from twin.units import Q_

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_RIG = REPO / "examples" / "rigs" / "liver4.toml"
EXAMPLE_SCENARIO = REPO / "examples" / "scenarios" / "liver4_truth.toml"

BASE = """\
[rig]
name = "bench"

[[chips]]
name = "chip1"
v_medium_ml = 1.0
v_cell_ml = 0.0034
n_cells_million = 1.0
limits = { max_flow = "100 uL/min", max_dose_volume = "0.2 mL" }

[[instruments]]
name = "pump1"
driver = "ne1000"
feeds = ["chip1"]
syringe_diameter_mm = 4.78
drug_concentration_um = 1000.0
connection = { kind = "serial", port = "/dev/ttyUSB0", address = 0 }
limits = { max_rate = "200 uL/min" }

[[instruments]]
name = "do1"
driver = "visiferm_do"
connection = { kind = "tcp", host = "10.0.0.5", port = 502, unit_id = 1 }

[[instruments]]
name = "do2"
driver = "visiferm_do"
connection = { kind = "tcp", host = "10.0.0.5", port = 502, unit_id = 2 }

[[instruments]]
name = "pressure"
driver = "modbus_sensor"
connection = { kind = "tcp", host = "10.0.0.5", port = 502, unit_id = 10 }

[[instruments.registers]]
name = "inlet"
quantity = "pressure"
address = 0
type = "float32"
unit = "kPa"

[[instruments.registers]]
name = "outlet"
quantity = "pressure_out"
address = 2
type = "float32"
unit = "kPa"

[[channels]]
name = "chip1_o2"
instrument = "do1"
measurement = "oxygen_air_saturation"
chip = "chip1"
unit = "percent"
poll_period_s = 300

[safe_state]
pump1 = "stop"
"""


def mistake(old: str, new: str) -> tuple[str, int]:
    """BASE with ``old`` replaced by ``new``; the line of ``new`` marked ``# <-`` is expected."""
    assert old in BASE, old
    text = BASE.replace(old, new, 1)
    lines = [n for n, line in enumerate(text.splitlines(), 1) if line.endswith("# <-")]
    assert len(lines) == 1
    return text, lines[0]


def error_line(text: str) -> tuple[int, str]:
    with pytest.raises(ConfigError) as info:
        parse_rig(text)
    message = str(info.value)
    match = re.match(r"rig\.toml line (\d+): .+; fix: .+", message)
    assert match, message
    return int(match.group(1)), message


def test_the_base_rig_and_the_example_are_valid() -> None:
    rig = parse_rig(BASE)
    assert [i.name for i in rig.instruments] == ["pump1", "do1", "do2", "pressure"]
    assert rig.chip_limits("pump1").max_rate == Q_(100, "uL/min")  # the chip is tighter than the pump
    assert rig.safe_action("pump1") == "stop" and rig.safe_action("do1") == "none"
    example = load_rig(EXAMPLE_RIG)
    assert len(example.chips) == 4 and {
        i.connection.unit_id for i in example.instruments if i.driver == "visiferm_do"
    } == {1, 2, 3, 4}


CASES = {
    "unknown driver": (
        'driver = "visiferm_do"\nconnection = { kind = "tcp", host = "10.0.0.5", port = 502, unit_id = 1 }',
        'driver = "visiferm" # <-\nconnection = { kind = "tcp", host = "10.0.0.5", port = 502, unit_id = 1 }',
        "unknown driver 'visiferm'",
    ),
    "duplicate tcp unit id": ("unit_id = 2 }", "unit_id = 1 } # <-", "same bus and address as 'do1'"),
    "register overlap": ("address = 2\n", "address = 1 # <-\n", "overlaps 'inlet'"),
    "unit does not convert": (
        'unit = "percent"\npoll',
        'unit = "kPa" # <-\npoll',
        "cannot hold 'oxygen_air_saturation'",
    ),
    "missing instrument": ('instrument = "do1"', 'instrument = "do9" # <-', "instrument 'do9', which is not"),
    "missing chip": ('chip = "chip1"\nunit', 'chip = "chip7" # <-\nunit', "chip 'chip7', which is not"),
    "pump feeds a missing chip": ('feeds = ["chip1"]', 'feeds = ["chip2"] # <-', "feeds chip 'chip2'"),
    "limit beyond the device": (
        'limits = { max_rate = "200 uL/min" }',
        'limits = { max_rate = "80 mL/min" } # <-',
        "outside the NE-1000's",
    ),
    "unknown measurement": ('measurement = "oxygen_air_saturation"', 'measurement = "pH" # <-', "does not report 'pH'"),
    "typo in a key": ("v_cell_ml = 0.0034", "v_cel_ml = 0.0034 # <-", "unknown key chips.0.v_cel_ml"),
    "bad value type": ("n_cells_million = 1.0", 'n_cells_million = "many" # <-', "n_cells_million"),
    "sensor in safe state": ('pump1 = "stop"', 'pump1 = "stop"\ndo1 = "stop" # <-', "cannot be stopped"),
    "bad quantity": (
        'max_flow = "100 uL/min", max_dose_volume = "0.2 mL" }',
        'max_flow = "100 uL", max_dose_volume = "0.2 mL" } # <-',
        "not a [volume] / [time]",
    ),
    "toml syntax": ('name = "bench"', 'name = "bench # <-', "not valid TOML"),
}


@pytest.mark.parametrize("case", CASES)
def test_each_mistake_names_its_line(case: str) -> None:
    old, new, expected = CASES[case]
    text, line = mistake(old, new)
    found, message = error_line(text)
    assert expected in message
    assert found == line, message


def test_a_duplicated_serial_address_names_the_second_pump() -> None:
    second = BASE.split('[[instruments]]\nname = "do1"')[0].split("[[instruments]]", 1)[1].replace("pump1", "pump2")
    text = BASE.replace("[safe_state]", "[[instruments]]" + second + "[safe_state]")
    found, message = error_line(text)
    assert "same bus and address as 'pump1'" in message and "/dev/ttyUSB0" in message
    assert (
        found == text.splitlines().index('connection = { kind = "serial", port = "/dev/ttyUSB0", address = 0 }', 20) + 1
    )


def test_a_missing_required_key_names_its_table() -> None:
    text = BASE.replace("v_medium_ml = 1.0\n", "")
    found, message = error_line(text)
    assert "chips.0.v_medium_ml is missing" in message and found == 4  # the [[chips]] header


def test_the_example_scenario_is_valid_and_errors_name_lines(tmp_path: Path) -> None:
    rig = load_rig(EXAMPLE_RIG)
    names = {"chips": [c.name for c in rig.chips], "instruments": [i.name for i in rig.instruments]}
    scenario = load_scenario(EXAMPLE_SCENARIO, **names)
    assert scenario.truth_for("chip3")["vmax"] == 3.0 and scenario.truth_for("chip1")["ps"] == 0.5
    assert scenario.noise_for("do3").drift_per_h == 0.02 and scenario.noise_for("do3").noise_sd == 0.3
    assert {f.device for f in scenario.faults()} == {"do2", "pump3", "teer"}
    bad = '[truth.chip1]\nvmax = 2.0\n\n[[faults]]\nkind = "timeout"\ndevice = "pump9"\nat_s = 10\n'
    with pytest.raises(ConfigError, match=r"scenario\.toml line 6: fault for unknown device 'pump9'"):
        parse_scenario(bad, **names)
    with pytest.raises(ConfigError, match=r"scenario\.toml line 1: \[truth\.chip1\]: .*vmx"):
        parse_scenario("[truth.chip1]\nvmx = 2.0\n", **names)
    with pytest.raises(ConfigError, match=r"line 2: unknown fault kind 'melt'"):
        parse_scenario('[[faults]]\nkind = "melt"\ndevice = "do1"\nat_s = 1\n', **names)
