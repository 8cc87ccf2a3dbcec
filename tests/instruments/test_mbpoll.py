"""Third-party peer: mbpoll (libmodbus) reads the simulated VisiFerm's O2 block and must get
the value the project's driver reads — over TCP, and over RTU on the same pty.

mbpoll counts registers from 1 by default (``-r 2090`` = PDU address 2089, as the
manual counts) and reads 32-bit values low word first unless ``-B`` is given.
``-c 5 -t 4:float`` reads the whole 10-register block as five floats (the device
refuses partial reads); the second float is the measured value.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from collections.abc import Iterator

import pytest

from instruments.connection import RetryPolicy
from instruments.drivers.hamilton import VisiFermDO
from instruments.sim.modbus_devices import SimModbusBus, visiferm_do_sim
from instruments.sim.modbus_sim import ModbusRtuSim, ModbusTcpSim
from instruments.transport.modbus_link import ModbusBus, RtuLine, TcpEndpoint

MBPOLL = shutil.which("mbpoll")
pytestmark = pytest.mark.skipif(
    MBPOLL is None,
    reason="!!! mbpoll is not installed (apt-get install mbpoll; scripts/system-deps.sh); "
    "third-party Modbus agreement tests SKIPPED !!!",
)
POLICY = RetryPolicy(timeout_s=0.5, retries=1)
O2_PERCENT_AIR_SAT = 87.3125  # exactly representable in float32


@pytest.fixture(autouse=True)
def no_thread_leak() -> Iterator[None]:
    before = threading.active_count()
    yield
    assert threading.active_count() == before, "a simulator or client thread was left running"


def mbpoll_floats(*args: str) -> list[float]:
    command = [MBPOLL or "mbpoll", "-a", "1", "-r", "2090", "-c", "5", "-t", "4:float", "-1", "-o", "2", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False)
    assert result.returncode == 0, f"mbpoll failed: {result.stdout}\n{result.stderr}"
    return [float(v) for v in re.findall(r"^\[\d+\]:\s+(\S+)", result.stdout, re.MULTILINE)]


@pytest.mark.parametrize("word_order, flags", [("low_word_first", ()), ("high_word_first", ("-B",))])
def test_mbpoll_over_tcp_agrees_with_the_driver(word_order: str, flags: tuple[str, ...]) -> None:
    device = visiferm_do_sim(value_source=lambda t: O2_PERCENT_AIR_SAT, word_order=word_order)
    with ModbusTcpSim(SimModbusBus([device])) as sim:
        floats = mbpoll_floats("-m", "tcp", "-p", str(sim.port), *flags, "127.0.0.1")
        with ModbusBus(TcpEndpoint("127.0.0.1", sim.port), POLICY) as bus:
            driver_value = VisiFermDO("do", bus.device(1, "do"), word_order=word_order).read()[0].value
    assert len(floats) == 5
    assert floats[1] == pytest.approx(driver_value, rel=1e-5) == O2_PERCENT_AIR_SAT
    assert (floats[3], floats[4]) == (0.0, 300.0)  # minimum, maximum of the block


def test_mbpoll_over_rtu_on_a_pty_agrees_with_the_driver() -> None:
    device = visiferm_do_sim(value_source=lambda t: O2_PERCENT_AIR_SAT)
    with ModbusRtuSim(SimModbusBus([device]), baudrate=19200, parity="N", stopbits=2) as sim:
        floats = mbpoll_floats("-m", "rtu", "-b", "19200", "-P", "none", "-s", "2", sim.port)
        with ModbusBus(RtuLine(sim.port), POLICY) as bus:
            driver_value = VisiFermDO("do", bus.device(1, "do")).read()[0].value
    assert floats[1] == pytest.approx(driver_value, rel=1e-5) == O2_PERCENT_AIR_SAT
