"""SerialLink over real ptys: retries, health, fail-fast when lost, re-finding the device."""

from __future__ import annotations

import dataclasses
import os
import time
from types import SimpleNamespace

import pytest
import serial

from instruments.connection import ConnectionState
from instruments.errors import DeviceLost, DeviceTimeout, TransportError, WireProtocolError
from instruments.sim.faults import Fault, FaultPlan
from instruments.sim.pty_device import PtyDevice
from instruments.transport.framing import LengthPrefixedStxFraming, SingleByteFraming, StxEtxFraming, TerminatorFraming
from instruments.transport.scripted import ScriptedTransport
from instruments.transport.serial_link import SerialLink, _map_serial_error
from instruments.transport.usb import UsbIdentity, find_usb_port
from tests.instruments.protocol_helpers import FAST, no_leaks  # noqa: F401

pytestmark = pytest.mark.usefixtures("no_leaks")


class EchoSim(PtyDevice):
    """Answers ``ping <n>\\n`` with ``pong <n>\\n``."""

    GARBLE_KEEP_TAIL = 1

    def __init__(self, plan: FaultPlan | None = None) -> None:
        super().__init__("echo", TerminatorFraming(b"\n"), plan=plan)

    def handle(self, request: bytes) -> bytes | None:
        return request.replace(b"ping", b"pong")


def parse_pong(frame: bytes) -> str:
    try:
        text = frame.decode("ascii")
    except UnicodeDecodeError:
        raise WireProtocolError(f"not ASCII: {frame!r}") from None
    if not text.startswith("pong "):
        raise WireProtocolError(f"unexpected {frame!r}")
    return text.strip()


@pytest.fixture
def plan() -> FaultPlan:
    return FaultPlan()


@pytest.fixture
def sim(plan: FaultPlan):
    with EchoSim(plan) as device:
        yield device


@pytest.fixture
def transitions() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def link(sim: EchoSim, transitions: list[tuple[str, str]]):
    link = SerialLink("echo", lambda: sim.path, TerminatorFraming(b"\n"), policy=FAST)
    link.health.on_change = lambda name, old, new, why: transitions.append((old.value, new.value))
    yield link
    link.close()


def now() -> float:
    return time.monotonic()


# -- framing ---------------------------------------------------------------------------
def test_framings_cut_exactly_one_frame() -> None:
    buffer = bytearray(b"4.983 ml\r\n*")
    assert TerminatorFraming(b"\r\n").extract(buffer) == b"4.983 ml\r\n"
    assert SingleByteFraming().extract(buffer) == b"*" and buffer == b""
    buffer = bytearray(b"\xff\x0200S\x03\x0201")
    assert StxEtxFraming().extract(buffer) == b"\x0200S\x03" and buffer == b"\x0201"
    assert StxEtxFraming().extract(buffer) is None
    safe = b"\x02\x07" + b"00S" + b"\x03\x03\x03"  # CRC bytes equal to ETX: cut by length
    buffer = bytearray(safe + b"\x02")
    assert LengthPrefixedStxFraming(4).extract(buffer) == safe and buffer == b"\x02"


def test_scripted_transport_checks_bytes() -> None:
    fake = ScriptedTransport(
        [(b"ping 1\n", b"pong 1\n"), (b"ping 2\n", None), (b"ping 3\n", b"pon")], TerminatorFraming(b"\n")
    )
    assert fake.query(b"ping 1\n", parse_pong) == "pong 1"
    with pytest.raises(DeviceTimeout):
        fake.query(b"ping 2\n")
    with pytest.raises(WireProtocolError, match="truncated"):
        fake.query(b"ping 3\n")
    with pytest.raises(AssertionError, match="exhausted"):
        fake.query(b"ping 4\n")


# -- the link over a pty ---------------------------------------------------------------
def test_query_over_pty(link: SerialLink, sim: EchoSim) -> None:
    assert link.query(b"ping 1\n", parse_pong) == "pong 1"
    assert link.port == sim.path and link.connection_state == ConnectionState.OK


@pytest.mark.parametrize("kind", ["timeout", "garbled", "truncated"])
def test_one_fault_is_retried_and_health_returns_to_ok(
    kind: str, link: SerialLink, plan: FaultPlan, transitions: list
) -> None:
    plan.add(Fault(kind, "echo", at_s=0.0))
    assert link.query(b"ping 7\n", parse_pong) == "pong 7"
    assert [f.fault.kind for f in plan.fired()] == [kind]
    assert transitions == [("ok", "degraded"), ("degraded", "ok")]


def test_persistent_silence_times_out_then_goes_lost_and_fails_fast(
    link: SerialLink, sim: EchoSim, plan: FaultPlan
) -> None:
    plan.add(Fault("timeout", "echo", at_s=now(), duration_s=60.0))
    with pytest.raises(DeviceTimeout):
        link.query(b"ping 1\n", parse_pong)  # 3 attempts: degraded -> reconnecting
    assert link.connection_state == ConnectionState.RECONNECTING
    with pytest.raises(DeviceLost):
        link.query(b"ping 2\n", parse_pong)  # 6th failure: lost
    served = len(sim.requests)
    started = now()
    with pytest.raises(DeviceLost, match="next attempt"):
        link.query(b"ping 3\n", parse_pong)  # fails fast, nothing sent
    assert now() - started < 0.05 and len(sim.requests) == served


def test_lost_device_is_probed_after_backoff_and_recovers(sim: EchoSim, plan: FaultPlan) -> None:
    policy = dataclasses.replace(FAST, backoff_initial_s=0.01, backoff_max_s=0.3)
    link = SerialLink("echo", lambda: sim.path, TerminatorFraming(b"\n"), policy=policy)
    fault_end_s = now() + 0.9
    plan.add(Fault("timeout", "echo", at_s=now(), duration_s=0.9))
    try:
        with pytest.raises(DeviceTimeout):
            link.query(b"ping 1\n", parse_pong, timeout_s=0.05)
        with pytest.raises(DeviceLost):
            link.query(b"ping 2\n", parse_pong, timeout_s=0.05)
        assert link.connection_state == ConnectionState.LOST
        time.sleep(max(fault_end_s - now(), 0.3) + 0.05)  # fault over, back-off passed
        assert link.query(b"ping 3\n", parse_pong) == "pong 3"
        assert link.connection_state == ConnectionState.OK
    finally:
        link.close()


def test_vanish_and_reappear_is_refound_through_the_resolver(link: SerialLink, sim: EchoSim, plan: FaultPlan) -> None:
    assert link.query(b"ping 1\n", parse_pong) == "pong 1"
    old_path = sim.path
    plan.add(Fault("vanish", "echo", at_s=0.0))
    assert link.query(b"ping 2\n", parse_pong) == "pong 2"
    assert sim.path != old_path and link.port == sim.path
    assert link.connection_state == ConnectionState.OK
    assert plan.fired("vanish")[0].detail == f"{old_path} -> {sim.path}"
    assert not os.path.exists(old_path) or old_path == sim.path


def test_gap_without_device_then_back(link: SerialLink, sim: EchoSim) -> None:
    assert link.query(b"ping 1\n", parse_pong) == "pong 1"
    assert sim.vanish(gap_s=0.3) is None
    with pytest.raises(TransportError):
        link.query(b"ping 2\n", parse_pong)
    time.sleep(0.35)
    assert link.query(b"ping 3\n", parse_pong) == "pong 3"
    assert link.connection_state == ConnectionState.OK


def test_usb_identity_refinds_a_reenumerated_adapter(sim: EchoSim) -> None:
    identity = UsbIdentity(serial_number="FT4XYZ", vid=0x0403, pid=0x6001)

    def comports():
        other = SimpleNamespace(device="/dev/ttyS0", serial_number=None, vid=None, pid=None)
        ours = SimpleNamespace(device=sim.path, serial_number="FT4XYZ", vid=0x0403, pid=0x6001)
        return [other, ours] if sim.path else [other]

    assert find_usb_port(identity, comports) == sim.path
    link = SerialLink("echo", lambda: find_usb_port(identity, comports), TerminatorFraming(b"\n"), policy=FAST)
    try:
        assert link.query(b"ping 1\n", parse_pong) == "pong 1"
        sim.vanish()
        assert link.query(b"ping 2\n", parse_pong) == "pong 2" and link.port == sim.path
    finally:
        link.close()


def test_missing_port_is_device_lost() -> None:
    link = SerialLink("nowhere", "/dev/does-not-exist", TerminatorFraming(b"\n"), policy=FAST)
    with pytest.raises(DeviceLost, match="cannot open"):
        link.query(b"ping\n", retry=False)
    link.close()


def test_pyserial_errors_are_mapped_once() -> None:
    assert isinstance(_map_serial_error(serial.SerialTimeoutException("w"), "x"), DeviceTimeout)
    mapped = _map_serial_error(serial.SerialException("gone"), "x")
    assert type(mapped) is TransportError and "re-find" in str(mapped)
    with pytest.raises(ValueError):
        UsbIdentity()
