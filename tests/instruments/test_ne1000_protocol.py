"""NE-1000 driver, byte for byte against frames built from the manual (no I/O)."""

from __future__ import annotations

import binascii

import pytest

from instruments.capabilities import Pump
from instruments.drivers import ne1000_protocol as proto
from instruments.drivers.limits import ChipLimits
from instruments.drivers.ne1000 import NE1000
from instruments.errors import ConfigError, DeviceAlarm, DeviceRejected, SetpointOutOfRange, WireProtocolError
from instruments.transport.scripted import ScriptedTransport
from tests.instruments.protocol_helpers import expected_protocol
from twin.units import Q_

OK = b"\x0200S\x03"


def pump(diameter_mm: float | None = 26.59, **kwargs):
    return lambda transport: NE1000(transport, syringe_diameter_mm=diameter_mm, **kwargs)


def test_crc_is_ccitt_xmodem() -> None:
    assert proto.crc16_ccitt(b"123456789") == 0x31C3 == binascii.crc_hqx(b"123456789", 0)
    assert proto.crc16_ccitt(b"00RUN") == binascii.crc_hqx(b"00RUN", 0) == 0x48E9


def test_is_a_pump() -> None:
    assert isinstance(NE1000(ScriptedTransport([])), Pump)


def test_identity_and_diameter() -> None:
    with expected_protocol(pump(None), [(b"00VER\r", b"\x0200SNE1000V3.928\x03"), (b"00DIA26.59\r", OK)]) as p:
        assert p.identity() == "NE1000V3.928"
        p.set_diameter(26.59)
        assert p.diameter_mm == 26.59


def test_rate_uses_the_unit_with_most_resolution() -> None:
    with expected_protocol(pump(), [(b"00RAT1500UH\r", OK), (b"00RAT1500MH\r", OK)]) as p:
        p.set_rate(Q_(1.5, "mL/h"))  # 25 µL/min = 1500 µL/h
        p.set_rate(Q_(25, "mL/min"))  # 1500 mL/h beats 25.00 mL/min


def test_dispense_small_syringe_counts_in_microlitres() -> None:
    exchanges = [(b"00DIRINF\r", OK), (b"00RAT600.0UH\r", OK), (b"00VOL5.000\r", OK), (b"00RUN\r", b"\x0200I\x03")]
    with expected_protocol(pump(4.699), exchanges) as p:
        p.dispense(Q_(5, "uL"), Q_(10, "uL/min"))
        assert p.last_status == "I"


def test_dispense_large_syringe_counts_in_millilitres() -> None:
    exchanges = [(b"00DIRINF\r", OK), (b"00RAT2000UM\r", OK), (b"00VOL1.500\r", OK), (b"00RUN\r", OK)]
    with expected_protocol(pump(26.59), exchanges) as p:
        p.dispense(Q_(1500, "uL"), Q_(2, "mL/min"))


def test_address_status_and_dispensed() -> None:
    exchanges = [
        (b"07\r", b"\x0207I\x03"),
        (b"07DIS\r", b"\x0207SI1.250W0.100ML\x03"),
        (b"07CLDINF\r", b"\x0207S\x03"),
        (b"07STP\r", b"\x0207S\x03"),
        (b"07DIRREV\r", b"\x0207S\x03"),
    ]
    with expected_protocol(pump(address=7), exchanges) as p:
        assert p.is_running()
        volumes = p.dispensed_volumes()
        assert volumes.infused == Q_(1.25, "mL") and volumes.withdrawn == Q_(0.1, "mL")
        p.clear_dispensed("INF")
        p.stop()
        p.set_direction("rev")


@pytest.mark.parametrize(
    "reply, code",
    [
        (b"\x0200S?\x03", "?"),
        (b"\x0200S?NA\x03", "?NA"),
        (b"\x0200I?OOR\x03", "?OOR"),
        (b"\x0200S?COM\x03", "?COM"),
        (b"\x0200S?IGN\x03", "?IGN"),
    ],
)
def test_error_replies_are_rejections_with_code(reply: bytes, code: str) -> None:
    with expected_protocol(pump(), [(b"00RUN\r", reply)]) as p:
        with pytest.raises(DeviceRejected) as caught:
            p.start()
        assert caught.value.code == code


@pytest.mark.parametrize("alarm", list("RSTEO"))
def test_alarms(alarm: str) -> None:
    with expected_protocol(pump(), [(b"00RUN\r", f"\x0200A?{alarm}\x03".encode())]) as p:
        with pytest.raises(DeviceAlarm) as caught:
            p.start()
        assert caught.value.code == alarm


@pytest.mark.parametrize(
    "reply", [b"\x0201S\x03", b"\x02xxS\x03", b"\x0200Q\x03", b"\x0200S?XYZ\x03", b"\x0200SI1.2W\x03"]
)
def test_unparseable_replies_are_protocol_errors(reply: bytes) -> None:
    with expected_protocol(pump(), [(b"00DIS\r", reply)]) as p:
        with pytest.raises(WireProtocolError):
            p.dispensed()


def test_safe_mode_frames_with_crc() -> None:
    exchanges = [(b"00SAF50\r", OK), (b"\x02\x0900RUNH\xe9\x03", b"\x02\x0700S\xaa\xa6\x03")]
    with expected_protocol(pump(), exchanges) as p:
        p.enable_safe_mode(50)
        p.start()
        assert p.safe_mode


def test_safe_mode_bad_crc_is_protocol_error() -> None:
    with expected_protocol(pump(safe_mode=True), [(b"\x02\x0900RUNH\xe9\x03", b"\x02\x0700S\xaa\xa7\x03")]) as p:
        with pytest.raises(WireProtocolError, match="CRC"):
            p.start()


@pytest.mark.parametrize(
    "call",
    [
        lambda p: p.set_rate(Q_(60, "uL/min")),  # above the chip's 50 µL/min
        lambda p: p.set_rate(Q_(100, "mL/min")),  # above the pump's limit for 4.699 mm
        lambda p: p.set_rate(Q_(1e-6, "uL/min")),  # below the pump's limit
        lambda p: p.set_rate(Q_(5, "uL")),  # not a rate
        lambda p: p.dispense(Q_(3, "mL"), Q_(10, "uL/min")),  # above the chip's 2 mL
        lambda p: p.dispense(Q_(10, "uL"), Q_(1, "mL/min")),  # rate too high for the chip, volume fine
        lambda p: p.set_volume(Q_(20, "mL")),  # 20000 µL: not four digits
        lambda p: p.set_diameter(60.0),
        lambda p: p.enable_safe_mode(0),
    ],
)
def test_setpoints_out_of_range_send_nothing(call) -> None:
    limits = ChipLimits(max_rate=Q_(50, "uL/min"), max_volume=Q_(2, "mL"))
    transport = ScriptedTransport([])
    with pytest.raises(SetpointOutOfRange):
        call(NE1000(transport, syringe_diameter_mm=4.699, chip_limits=limits))
    assert transport.sent == []


def test_configuration_errors() -> None:
    with pytest.raises(ConfigError):
        NE1000(ScriptedTransport([]), address=100)
    transport = ScriptedTransport([])
    with pytest.raises(ConfigError, match="diameter"):
        NE1000(transport).set_rate(Q_(1, "uL/min"))
    assert transport.sent == []


def test_number_format_has_four_digits() -> None:
    assert [proto.format_number(v) for v in (26.59, 1.5, 1000, 0.1, 123.45, 9999)] == [
        "26.59",
        "1.500",
        "1000",
        "0.100",
        "123.5",
        "9999",
    ]
    assert proto.format_number(10000) is None and proto.format_number(0.0004) is None
