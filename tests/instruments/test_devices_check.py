"""`chiptwin devices check` and `chiptwin sim-rig`: in-process, and as real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from instruments.clock import AcceleratedClock
from instruments.rig.model import load_rig
from instruments.sim.rig import SimulatedRig
from tests.instruments.protocol_helpers import no_leaks  # noqa: F401
from ui.cli.app import app as chiptwin

REPO = Path(__file__).resolve().parents[2]
RIG = REPO / "examples" / "rigs" / "liver4.toml"
SCENARIO = REPO / "examples" / "scenarios" / "liver4_truth.toml"
CHIPTWIN = Path(sys.executable).with_name("chiptwin")


def app() -> typer.Typer:
    return chiptwin  # the real command line: user errors are mapped where users meet them


@pytest.mark.usefixtures("no_leaks")
def test_check_against_the_simulated_rig_is_all_ok_and_reports_readings(tmp_path: Path) -> None:
    endpoints = tmp_path / "endpoints.json"
    with SimulatedRig(load_rig(RIG), clock=AcceleratedClock.starting_now(3600)) as sim:
        endpoints.write_text(json.dumps(sim.endpoints_document()))
        result = CliRunner().invoke(
            app(), ["devices", "check", "--rig", str(RIG), "--endpoints", str(endpoints), "--json"]
        )
        table = CliRunner().invoke(app(), ["devices", "check", "--rig", str(RIG), "--endpoints", str(endpoints)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] and len(report["devices"]) == 10
    by_name = {d["name"]: d for d in report["devices"]}
    assert by_name["pump1"]["identity"] == "NE1000V3.928" and by_name["pump1"]["state"] == "ok"
    assert by_name["do3"]["readings"][0]["value"] == pytest.approx(70.0, abs=1e-3)
    assert by_name["pressure"]["readings"][0]["quantity"] == "pressure"
    assert table.exit_code == 0 and "10/10 devices OK" in table.output


@pytest.mark.usefixtures("no_leaks")
def test_a_missing_device_fails_the_check_alone(tmp_path: Path) -> None:
    endpoints = tmp_path / "endpoints.json"
    with SimulatedRig(load_rig(RIG), clock=AcceleratedClock.starting_now(3600)) as sim:
        document = sim.endpoints_document()
        document["instruments"]["pump3"]["port"] = str(tmp_path / "no-such-tty")
        endpoints.write_text(json.dumps(document))
        result = CliRunner().invoke(
            app(),
            ["devices", "check", "--rig", str(RIG), "--endpoints", str(endpoints), "--json", "--timeout-s", "0.2"],
        )
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    failed = [d for d in report["devices"] if not d["ok"]]
    assert [d["name"] for d in failed] == ["pump3"] and "DeviceLost" in failed[0]["error"]


def test_a_bad_rig_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "rig.toml"
    bad.write_text(RIG.read_text().replace('driver = "teer"', 'driver = "teer2000"'))
    result = CliRunner().invoke(app(), ["devices", "check", "--rig", str(bad)])
    assert result.exit_code == 2
    line = bad.read_text().splitlines().index('driver = "teer2000"') + 1
    assert f"error: rig.toml line {line}: unknown driver 'teer2000'; fix:" in result.output


def wait_for(path: Path, process: subprocess.Popen, timeout_s: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "sim-rig did not write its endpoints file"
        time.sleep(0.05)
    return json.loads(path.read_text())


@pytest.mark.timeout(60)
def test_sim_rig_and_devices_check_as_real_subprocesses(tmp_path: Path) -> None:
    endpoints = tmp_path / "endpoints.json"
    sim_rig = subprocess.Popen(
        [
            str(CHIPTWIN),
            "sim-rig",
            "--rig",
            str(RIG),
            "--scenario",
            str(SCENARIO),
            "--endpoints-file",
            str(endpoints),
            "--clock-rate",
            "600",
            "--duration-s",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        document = wait_for(endpoints, sim_rig)
        assert document["pid"] == sim_rig.pid and document["clock"]["rate"] == 600.0
        check = subprocess.run(
            [str(CHIPTWIN), "devices", "check", "--rig", str(RIG), "--endpoints", str(endpoints), "--json"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert all(device["ok"] for device in json.loads(check.stdout)["devices"])
        sim_rig.send_signal(signal.SIGTERM)
        _, stderr = sim_rig.communicate(timeout=10)
    finally:
        if sim_rig.poll() is None:
            sim_rig.kill()
            sim_rig.communicate()
    assert sim_rig.returncode == 0, stderr
    assert "stopped cleanly" in stderr and not endpoints.exists()
    assert os.path.basename(document["instruments"]["pump1"]["port"]).isdigit()
