"""RTU client timing: a reply is handed over when it arrives, the 3.5-char silence is kept
between frames, and the simulator charges a request that broke the silence to the line."""

from __future__ import annotations

import os
import select
import struct
import time
import tty
from collections.abc import Iterator

import pytest

from instruments.connection import RetryPolicy
from instruments.sim.modbus_devices import SimModbusBus, visiferm_do_sim
from instruments.sim.modbus_sim import ModbusRtuSim
from instruments.transport.modbus_codec import with_crc
from instruments.transport.modbus_link import ModbusBus, RtuLine
from instruments.transport.rtu_client import RtuClient, rtu_silence_s

SLOW_BAUD = 110  # 100 ms per 8N2 char: pymodbus' own recv polls 4 chars (400 ms) past a reply
REQUEST = with_crc(bytes([1, 3]) + struct.pack(">HH", 2089, 10))  # VisiFerm block, 8 bytes
REPLY_BYTES = 5 + 2 * 10


def test_silence_is_three_and_a_half_chars_up_to_19200_baud_then_fixed() -> None:
    assert rtu_silence_s(19200, "N", 2) == pytest.approx(3.5 * 11 / 19200)
    assert rtu_silence_s(9600, "E", 1) == pytest.approx(3.5 * 11 / 9600)
    assert rtu_silence_s(115200, "N", 2) == pytest.approx(0.00175)


@pytest.fixture
def pty_client() -> Iterator[tuple[int, RtuClient]]:
    master, slave = os.openpty()
    tty.setraw(slave)
    client = RtuClient(
        os.ttyname(slave), baudrate=SLOW_BAUD, parity="N", stopbits=2, bytesize=8, timeout=1.0, retries=0
    )
    assert client.connect()
    yield master, client
    client.close()
    os.close(master)
    os.close(slave)


def test_recv_returns_the_bytes_that_arrived_without_waiting_for_a_silence(pty_client) -> None:
    master, client = pty_client
    os.write(master, b"\x01\x03\x14" + bytes(22))
    started = time.monotonic()
    data = client.recv(None)
    assert len(data) == REPLY_BYTES
    assert time.monotonic() - started < 0.2  # pymodbus' polling would take ≥ 400 ms here (slack for a loaded machine)


def test_recv_times_out_empty_when_nothing_arrives(pty_client) -> None:
    _, client = pty_client
    client.socket.timeout = 0.05
    assert client.recv(None) == b""


def test_send_keeps_the_silence_after_the_last_byte_received(pty_client) -> None:
    master, client = pty_client
    os.write(master, b"\x01\x03\x14" + bytes(22))
    client.recv(None)
    started = time.monotonic()
    client.send(REQUEST)
    assert time.monotonic() - started >= 0.9 * client.silence_s  # 3.5 chars = 350 ms at 110 baud
    assert os.read(master, 64) == REQUEST


def test_polling_through_the_bus_never_breaks_the_silence() -> None:
    # replies are instant (no byte timing): only the client's own wait keeps the gap
    policy = RetryPolicy(timeout_s=0.5, retries=0)
    with ModbusRtuSim(SimModbusBus([visiferm_do_sim()])) as sim, ModbusBus(RtuLine(sim.port), policy) as bus:
        link = bus.device(1, "visiferm")
        for _ in range(20):
            link.read_registers(2089, 10)
        assert sim.early_requests == 0


def _read_reply(fd: int) -> bytes:
    data = b""
    while len(data) < REPLY_BYTES:
        ready, _, _ = select.select([fd], [], [], 2.0)
        assert ready, f"no complete reply (got {data!r})"
        data += os.read(fd, 64)
    return data


def test_simulator_charges_a_request_that_broke_the_silence_to_the_line() -> None:
    # 600 baud: the 3.5-char silence is 64 ms, so the simulator thread waking late on a loaded
    # machine still stamps the second request inside it (at 9600 baud it was 4 ms)
    char_s = 11 / 600
    with ModbusRtuSim(SimModbusBus([visiferm_do_sim()]), baudrate=600, enforce_timing=True) as sim:
        fd = os.open(sim.port, os.O_RDWR | os.O_NOCTTY)
        try:
            tty.setraw(fd)
            started = time.monotonic()
            os.write(fd, REQUEST)
            _read_reply(fd)
            os.write(fd, REQUEST)  # at once: no 3.5-char silence
            _read_reply(fd)
            elapsed_s = time.monotonic() - started
        finally:
            os.close(fd)
        assert sim.early_requests == 1
    # two transactions of 8 + 3.5 + 25 chars, and the second request could not start before
    # the line had been silent 3.5 chars after the first reply
    assert elapsed_s >= (2 * (8 + 3.5 + 25) + 3.5) * char_s


def test_an_rtu_line_is_never_shared_with_a_second_client(pty_client) -> None:
    # the flock pyserial's exclusive=True takes: a second runner (or anything else) cannot open the line
    master, first = pty_client
    second = RtuClient(
        first.comm_params.host, baudrate=SLOW_BAUD, parity="N", stopbits=2, bytesize=8, timeout=0.2, retries=0
    )
    try:
        assert not second.connect() and second.socket is None
        first.close()
        assert second.connect(), "the line stays locked after its holder closed it"
    finally:
        second.close()
