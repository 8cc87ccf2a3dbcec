"""The simulated rig in-process: real ptys and a real Modbus TCP gateway, chips that react.

Drivers reach it only through ``open_rig(rig, endpoints_resolver(...))``, exactly as the
runner will; mbpoll (libmodbus) is the independent check of the gateway.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from instruments.clock import AcceleratedClock
from instruments.errors import InstrumentError
from instruments.rig.factory import RigDevices, endpoints_resolver, open_rig
from instruments.rig.model import Rig, load_rig
from instruments.sim.rig import SimulatedRig
from instruments.sim.scenario import Scenario, parse_scenario
from tests.instruments.protocol_helpers import FAST, no_leaks  # noqa: F401
from twin.units import Q_

pytestmark = pytest.mark.usefixtures("no_leaks")
REPO = Path(__file__).resolve().parents[2]
RIG = REPO / "examples" / "rigs" / "liver4.toml"
MBPOLL = shutil.which("mbpoll")
NOISE_SD = 0.3


@pytest.fixture(scope="module")
def rig() -> Rig:
    return load_rig(RIG)


def scenario_for(rig: Rig, text: str) -> Scenario:
    return parse_scenario(text, chips=[c.name for c in rig.chips], instruments=[i.name for i in rig.instruments])


@contextmanager
def running(rig: Rig, scenario: Scenario, rate: float = 3600.0) -> Iterator[tuple[SimulatedRig, RigDevices]]:
    with SimulatedRig(rig, scenario, AcceleratedClock.starting_now(rate)) as sim:
        with open_rig(rig, endpoints_resolver(sim.endpoints_document()), FAST) as devices:
            yield sim, devices


def test_endpoints_are_real_ptys_and_one_tcp_gateway(rig: Rig) -> None:
    with running(rig, Scenario()) as (sim, _devices):
        document = sim.endpoints_document()
        endpoints = document["instruments"]
        assert set(endpoints) == {i.name for i in rig.instruments}
        assert all(Path(endpoints[f"pump{n}"]["port"]).exists() for n in range(1, 5))
        assert len({(e["host"], e["port"]) for e in endpoints.values() if e["kind"] == "tcp"}) == 1
        assert document["clock"]["kind"] == "accelerated" and document["clock"]["rate"] == 3600.0


def test_each_chip_runs_its_hidden_truth(rig: Rig) -> None:
    scenario = scenario_for(rig, "[truth.all]\nvmax = 2.0\n[truth.chip3]\nvmax = 3.0\nocr = 180.0\n")
    with running(rig, scenario) as (sim, _devices):
        assert sim.chips["chip1"].params == {"vmax": 2.0}
        assert sim.chips["chip3"].params == {"vmax": 3.0, "ocr": 180.0}
        time.sleep(0.05)
        assert sim.chip_state("chip1").time_h > 0  # stepped on the shared clock
        assert sim.chip_observables("chip3")["oxygen"] == pytest.approx(100 - 180 / 5, abs=1e-3)


def test_a_dose_through_the_ne1000_driver_reaches_the_chip_exactly(rig: Rig) -> None:
    with running(rig, Scenario()) as (sim, devices):
        pump = devices["pump2"]
        before = sim.chip_state("chip2")
        pump.clear_dispensed()
        pump.dispense(Q_(20, "uL"), Q_(100, "uL/min"))  # 12 s of pump time: ~3 ms at 3600x
        deadline = time.monotonic() + 5
        while pump.is_running() and time.monotonic() < deadline:
            time.sleep(0.01)
        after = sim.chip_state("chip2")
        dispensed_ml = pump.dispensed().to("mL").magnitude
        concentration_um = rig.instrument("pump2").drug_concentration_um
        assert dispensed_ml == pytest.approx(0.020, abs=1e-9)
        added_nmol = after["drug_added_nmol"] - before["drug_added_nmol"]
        assert added_nmol == pytest.approx(dispensed_ml * concentration_um, rel=1e-9)  # 20 nmol
        assert after["V_m"] - before["V_m"] == pytest.approx(dispensed_ml, rel=1e-9)
        assert sim.chip_state("chip1")["drug_added_nmol"] == 0.0  # pump2 feeds chip2 only


def test_o2_through_the_hamilton_driver_is_the_twins_oxygen_plus_noise(rig: Rig) -> None:
    scenario = scenario_for(rig, f"seed = 3\n[sensors.all]\nnoise_sd = {NOISE_SD}\n[truth.chip4]\nocr = 200.0\n")
    with running(rig, scenario) as (sim, devices):
        residuals = []
        for _ in range(20):
            measured = devices["do4"].read()[0]
            assert measured.quantity == "oxygen_air_saturation" and measured.unit == "percent"
            residuals.append(measured.value - sim.chip_observables("chip4")["oxygen"])
    assert all(abs(r) < 5 * NOISE_SD for r in residuals)
    assert max(residuals) - min(residuals) > 0  # noise is really there
    assert abs(sum(residuals) / len(residuals)) < 3 * NOISE_SD / len(residuals) ** 0.5 + 1e-3


@pytest.mark.skipif(MBPOLL is None, reason="!!! mbpoll is not installed; gateway agreement test SKIPPED !!!")
def test_mbpoll_reads_the_gateways_o2_block_as_the_driver_does(rig: Rig) -> None:
    with running(rig, Scenario()) as (sim, devices):
        gateway = sim.endpoints["do2"]
        command = [
            MBPOLL or "mbpoll",
            "-m",
            "tcp",
            "-p",
            str(gateway["port"]),
            "-a",
            "2",
            "-r",
            "2090",
            "-c",
            "5",
            "-t",
            "4:float",
            "-1",
            "-o",
            "2",
            gateway["host"],
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False)
        driver_value = devices["do2"].read()[0].value
    assert result.returncode == 0, result.stdout + result.stderr
    floats = [float(v) for v in re.findall(r"^\[\d+\]:\s+(\S+)", result.stdout, re.MULTILINE)]
    assert floats[1] == pytest.approx(driver_value, rel=1e-5) == pytest.approx(70.0, abs=1e-3)


FAULTS = """
[[faults]]
kind = "timeout"
device = "do1"
at_s = 60
[[faults]]
kind = "modbus_exception"
device = "pressure"
at_s = 120
params = { code = 4 }
[[faults]]
kind = "pump_alarm"
device = "pump1"
at_s = 180
params = { alarm = "S" }
[[faults]]
kind = "garbled"
device = "teer"
at_s = 240
"""


def test_each_scheduled_fault_is_logged_with_its_time(rig: Rig) -> None:
    scenario = scenario_for(rig, FAULTS)
    with running(rig, scenario) as (sim, devices):
        while sim.rig_time_s() < 300:  # 300 rig seconds: under 0.1 s of wall time
            time.sleep(0.01)
        seen = {}
        for name, read in (
            ("do1", lambda: devices["do1"].read()),
            ("pressure", lambda: devices["pressure"].read()),
            ("pump1", lambda: devices["pump1"].status()),
            ("teer", lambda: devices["teer"].read()),
        ):
            try:
                read()
                seen[name] = "recovered"  # the link's retry got past the one-shot fault
            except InstrumentError as exc:
                seen[name] = type(exc).__name__
        fired = {(f.fault.kind, f.fault.device): f for f in sim.plan.log}
    assert seen["pressure"] == "DeviceRejected" and seen["pump1"] == "DeviceAlarm"
    assert seen["do1"] == seen["teer"] == "recovered"
    for fault in scenario.faults():
        event = fired[(fault.kind, fault.device)]
        assert fault.at_s <= event.t_s < fault.at_s + 3600, (fault, event)  # fired when first asked after at_s
    assert len(sim.plan.log) == 4
