"""Register-level codec tests: word orders, types, the RTU CRC (values from the spec)."""

from __future__ import annotations

import pytest

from instruments.transport.modbus_codec import (
    crc16_modbus,
    decode,
    encode,
    rtu_bits_per_char,
    rtu_char_time_s,
    swapped,
    with_crc,
)


def test_float32_word_orders_are_mirror_images() -> None:
    # 24.358 = 0x41C2DD2F (the manual's example temperature)
    assert encode(24.358, "float32", "high_word_first") == [0x41C2, 0xDD2F]
    assert encode(24.358, "float32", "low_word_first") == [0xDD2F, 0x41C2]
    assert decode([0xDD2F, 0x41C2], "float32", "low_word_first") == pytest.approx(24.358, rel=1e-6)
    assert decode([0xDD2F, 0x41C2], "float32", "high_word_first") != pytest.approx(24.358, rel=1e-3)


@pytest.mark.parametrize(
    "type_name, value, high_first",
    [
        ("uint16", 65535, [0xFFFF]),
        ("int16", -2, [0xFFFE]),
        ("uint32", 0x00010002, [0x0001, 0x0002]),
        ("int32", -1, [0xFFFF, 0xFFFF]),
    ],
)
def test_integer_types_round_trip_in_both_orders(type_name: str, value: int, high_first: list[int]) -> None:
    assert encode(value, type_name, "high_word_first") == high_first
    low_first = encode(value, type_name, "low_word_first")
    assert low_first == list(reversed(high_first))
    assert decode(low_first, type_name, "low_word_first") == value


def test_bad_word_order_and_wrong_register_count_are_refused() -> None:
    with pytest.raises(ValueError, match="word order"):
        decode([1, 2], "uint32", "middle_endian")
    with pytest.raises(ValueError, match="needs 2 registers"):
        decode([1], "float32")
    assert swapped("low_word_first") == "high_word_first"


def test_rtu_crc_matches_the_specification_example() -> None:
    # read 10 holding registers at 0 from slave 1: 01 03 00 00 00 0A C5 CD
    frame = bytes.fromhex("01030000000A")
    assert with_crc(frame) == bytes.fromhex("01030000000AC5CD")
    assert crc16_modbus(with_crc(frame)) == 0  # CRC over frame + CRC is zero


def test_char_time_counts_start_parity_and_stop_bits() -> None:
    assert rtu_bits_per_char("N", 2) == 11 and rtu_bits_per_char("E", 1) == 11 and rtu_bits_per_char("N", 1) == 10
    assert rtu_char_time_s(19200, 11) == pytest.approx(11 / 19200)
