"""`chiptwin protocol check`: a summary or JSON for a valid protocol, every error and exit 2 otherwise."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tests.protocols.conftest import EXAMPLES, LIVER4
from ui.cli.app import app

runner = CliRunner()


def _check(*args: str):
    return runner.invoke(app, ["protocol", "check", *args], env={"COLUMNS": "200"})


def test_json_summary_of_the_closed_loop():
    result = _check(str(EXAMPLES / "closed_loop_liver.toml"), "--rig", str(LIVER4), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["valid"] and report["protocol"] == "closed-loop liver"
    assert set(report["peak_concentration_um"]) == {"chip1", "chip2", "chip3", "chip4"}
    assert report["sampled_volume_ml"]["chip1"] == 0.3 and report["interlock_trips"] == []
    assert set(report["pump_volume_ml"]) == {"pump1", "pump2", "pump3", "pump4"}


def test_table_summary_of_the_overnight_protocol():
    result = _check(str(EXAMPLES / "overnight_dosing.toml"), "--rig", str(LIVER4))
    assert result.exit_code == 0, result.output
    assert "overnight dosing: valid; dry run 24 h" in result.stdout
    assert "peak (uM)" in result.stdout and "pump1" in result.stdout and "No interlock" in result.stdout


def test_invalid_protocol_lists_every_error_and_exits_2(tmp_path):
    text = (EXAMPLES / "overnight_dosing.toml").read_text()
    text = text.replace('concentration = "10 uM"', "concentration = 10").replace('kind = "wait"', 'kind = "wiat"')
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    result = _check(str(bad), "--rig", str(LIVER4))
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and all(line.startswith("error: bad.toml line ") for line in lines)
    assert "has no unit" in lines[0] and "unknown step kind 'wiat'" in lines[1]
    as_json = json.loads(_check(str(bad), "--rig", str(LIVER4), "--json").stdout)
    assert not as_json["valid"] and [e["line"] for e in as_json["errors"]] == [
        int(line.split()[3][:-1]) for line in lines
    ]


def test_missing_rig_or_protocol_file_is_a_user_error(tmp_path):
    result = _check(str(EXAMPLES / "overnight_dosing.toml"), "--rig", str(tmp_path / "nope.toml"))
    assert result.exit_code == 2 and "cannot read rig file" in result.stderr
    result = _check(str(tmp_path / "nope.toml"), "--rig", str(LIVER4))
    assert (
        result.exit_code == 2 and "nope.toml: it does not exist" in result.stderr and "Traceback" not in result.output
    )
