"""Issue #15 for rig and scenario files: nothing nonsensical gets in, nothing crashes.

Each malformed file goes through the real CLI (`chiptwin devices check`, `chiptwin sim-rig`)
and must end in one line naming the file and line, exit 2, before any device is touched.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.instruments.test_rig_file import BASE, EXAMPLE_RIG
from ui.cli.app import app

runner = CliRunner()
NO_ENDPOINTS = {"rig": "none", "instruments": {}}


@pytest.fixture
def endpoints(tmp_path: Path) -> Path:
    """An endpoints file with no device: a valid rig gets past loading, then stops before any I/O."""
    path = tmp_path / "endpoints.json"
    path.write_text(json.dumps(NO_ENDPOINTS))
    return path


def check(rig: Path, endpoints: Path):
    return runner.invoke(app, ["devices", "check", "--rig", str(rig), "--endpoints", str(endpoints)])


def refused(result, *words: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_a_valid_rig_gets_past_loading(tmp_path: Path, endpoints: Path) -> None:
    path = tmp_path / "rig.toml"
    path.write_text(BASE)
    refused(check(path, endpoints), "the endpoints file has no entry for 'pump1'")  # i.e. the rig was accepted


RIG_MISTAKES = {
    "nan max_flow": ('max_flow = "100 uL/min"', 'max_flow = "nan uL/min"', "max_flow: cannot read 'nan uL/min'"),
    "max_flow that would hang pint": ('max_flow = "100 uL/min"', 'max_flow = "9**9**9 uL/min"', "max_flow"),
    "infinite v_medium": ("v_medium_ml = 1.0", "v_medium_ml = inf", "finite number"),
    "tcp port -1": ("port = 502, unit_id = 1 }", "port = -1, unit_id = 1 }", "TCP port -1 is outside 1–65535"),
    "tcp port 99999": ("port = 502, unit_id = 1 }", "port = 99999, unit_id = 1 }", "TCP port 99999"),
    "infinite poll period": ("poll_period_s = 300", "poll_period_s = inf", "poll_period_s"),
    "zero poll period": ("poll_period_s = 300", "poll_period_s = 0.0001", "greater than or equal to 0.05"),
    "nan plausible range": ("poll_period_s = 300", "poll_period_s = 300\nplausible = [nan, 100.0]", "plausible"),
    "register address -1": ("address = 0\n", "address = -1\n", "address"),
    "register address beyond 65535": ("address = 0\n", "address = 70000\n", "address"),
    "nan register scale": (
        'unit = "kPa"\n\n[[instruments.registers]]',
        'unit = "kPa"\nscale = nan\n\n[[instruments.registers]]',
        "scale",
    ),
    "zero register scale": (
        'unit = "kPa"\n\n[[instruments.registers]]',
        'unit = "kPa"\nscale = 0.0\n\n[[instruments.registers]]',
        "scale 0",
    ),
    "unparseable channel unit": ('unit = "percent"', 'unit = "???"', "unit '???' cannot hold"),
    "empty channel unit": ('unit = "percent"', 'unit = ""', "cannot hold"),
    "register unit pint chokes on": (
        'type = "float32"\nunit = "kPa"\n\n[[instruments.registers]]',
        'type = "float32"\nunit = "mL/"\n\n[[instruments.registers]]',
        "mL/",
    ),
    "pump feeds a chip twice": ('feeds = ["chip1"]', 'feeds = ["chip1", "chip1"]', "names 'chip1' twice"),
    "absurd drug concentration": (
        "drug_concentration_um = 1000.0",
        "drug_concentration_um = 1e300",
        "drug_concentration_um",
    ),
    "port is a boolean": ("port = 502, unit_id = 1 }", "port = true, unit_id = 1 }", "not true/false"),
}


@pytest.mark.parametrize("case", RIG_MISTAKES)
def test_rig_mistakes_are_one_line_with_the_line_to_fix(tmp_path: Path, endpoints: Path, case: str) -> None:
    old, new, words = RIG_MISTAKES[case]
    assert old in BASE, old
    text = BASE.replace(old, new, 1)
    path = tmp_path / "rig.toml"
    path.write_text(text)
    line = refused(check(path, endpoints), words)
    match = re.match(r"error: rig\.toml line (\d+): .+; fix: .+", line)
    assert match, line
    changed = next(n for n, (a, b) in enumerate(zip(text.splitlines(), BASE.splitlines()), 1) if a != b)
    assert int(match.group(1)) in (changed, changed + 1), line  # the changed line (or the added key after it)


def test_two_pumps_feeding_one_chip_is_refused_and_names_both(tmp_path: Path, endpoints: Path) -> None:
    second = (
        '[[instruments]]\nname = "pump2"\ndriver = "ne1000"\nfeeds = ["chip1"]\nsyringe_diameter_mm = 4.78\n'
        'connection = { kind = "serial", port = "/dev/ttyUSB1", address = 0 }\n\n'
    )
    path = tmp_path / "rig.toml"
    path.write_text(BASE.replace("[safe_state]", second + "[safe_state]"))
    refused(check(path, endpoints), "chip 'chip1' is fed by two pumps: 'pump1' (line 11) and 'pump2'")


def test_a_chip_no_pump_feeds_is_valid_for_a_sensing_only_rig(tmp_path: Path, endpoints: Path) -> None:
    chip2 = '[[chips]]\nname = "chip2"\nv_medium_ml = 1.0\nv_cell_ml = 0.0034\nn_cells_million = 1.0\n\n'
    path = tmp_path / "rig.toml"
    path.write_text(BASE.replace("[[instruments]]", chip2 + "[[instruments]]", 1))
    refused(check(path, endpoints), "no entry for 'pump1'")  # past the rig file: accepted


def test_rig_file_level_mistakes(tmp_path: Path, endpoints: Path) -> None:
    path = tmp_path / "rig.toml"
    path.write_bytes(BASE.encode().replace(b'"bench"', b'"b\xe9nch"'))
    refused(check(path, endpoints), "rig.toml", "not UTF-8 text (byte 0xe9")
    refused(check(tmp_path, endpoints), "is a directory, not a rig file")
    path.write_text("")
    refused(check(path, endpoints), "rig file is empty")
    refused(check(tmp_path / "nope.toml", endpoints), "cannot read rig file", "does not exist")


# -- scenario files --------------------------------------------------------------------------------------
def sim_rig(scenario: Path, tmp_path: Path):
    return runner.invoke(
        app,
        [
            "sim-rig",
            "--rig",
            str(EXAMPLE_RIG),
            "--scenario",
            str(scenario),
            "--duration-s",
            "0",
            "--endpoints-file",
            str(tmp_path / "ep.json"),
        ],
    )


SCENARIO_MISTAKES = {
    "infinite noise": ("[sensors.all]\nnoise_sd = inf\n", "line 2", "sensors.all.noise_sd"),
    "nan drift": ("[sensors.do1]\ndrift_per_h = nan\n", "line 2", "sensors.do1.drift_per_h"),
    "pump alarm code that does not exist": (
        '[[faults]]\nkind = "pump_alarm"\ndevice = "pump1"\nat_s = 10\nparams = { alarm = "X" }\n',
        "line 5",
        "alarm = 'X' is not accepted",
    ),
    "pump alarm on an oxygen sensor": (
        '[[faults]]\nkind = "pump_alarm"\ndevice = "do1"\nat_s = 10\n',
        "line 2",
        "a 'pump_alarm' fault cannot happen on 'do1' (visiferm_do)",
    ),
    "modbus exception code 99": (
        '[[faults]]\nkind = "modbus_exception"\ndevice = "do1"\nat_s = 10\nparams = { code = 99 }\n',
        "line 5",
        "code = 99",
    ),
    "unknown fault parameter": (
        '[[faults]]\nkind = "timeout"\ndevice = "do1"\nat_s = 10\nparams = { when = 1 }\n',
        "line 5",
        "no parameter 'when'",
    ),
    "infinite fault time": ('[[faults]]\nkind = "timeout"\ndevice = "do1"\nat_s = inf\n', "line 4", "at_s"),
    "negative seed": ("seed = -1\n", "line 1", "seed"),
    "absurd truth": ("[truth.all]\nvmax = 1e300\n", "line 2", "vmax = 1e+300 is beyond"),
    "unknown key": ("[assay]\ndelay_h = 1\nwhen = 2\n", "line 3", "unknown" if False else "assay.when"),
}


@pytest.mark.parametrize("case", SCENARIO_MISTAKES)
def test_scenario_mistakes_are_one_line(tmp_path: Path, case: str) -> None:
    text, line, words = SCENARIO_MISTAKES[case]
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    refused(sim_rig(path, tmp_path), f"scenario.toml {line}:", words)


def test_scenario_file_level_mistakes_and_a_good_one(tmp_path: Path) -> None:
    path = tmp_path / "scenario.toml"
    path.write_bytes(b"seed = 1\n# \xff\n")
    refused(sim_rig(path, tmp_path), "scenario.toml", "not UTF-8")
    refused(sim_rig(tmp_path, tmp_path), "is a directory")
    path.write_text(
        'seed = 3\n[sensors.all]\nnoise_sd = 0.1\n[[faults]]\nkind = "pump_alarm"\ndevice = "pump1"\n'
        'at_s = 10\nparams = { alarm = "R" }\n'
    )
    assert sim_rig(path, tmp_path).exit_code == 0
