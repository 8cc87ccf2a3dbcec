"""Register ↔ value codecs for Modbus: 16/32-bit integers and float32, both word orders.

Modbus moves 16-bit registers, each big-endian on the wire; how a 32-bit value is split
over two registers is *not* standardised. ``"high_word_first"`` (ABCD, "big-endian
words", mbpoll ``-B``) puts the most significant word in the lower register;
``"low_word_first"`` (CDAB, mbpoll's default) puts it in the higher one. Getting this
wrong is the most common Modbus bug (pymodbus issues 2616, 2675, 2544), so every 32-bit
point carries its word order explicitly. Used by the drivers and the simulators alike.
"""

from __future__ import annotations

import struct
from typing import Literal

WordOrder = Literal["low_word_first", "high_word_first"]
WORD_ORDERS: tuple[str, ...] = ("low_word_first", "high_word_first")

# register count and struct format (big-endian, whole value) per point type
REGISTER_TYPES: dict[str, tuple[int, str]] = {
    "uint16": (1, ">H"),
    "int16": (1, ">h"),
    "uint32": (2, ">I"),
    "int32": (2, ">i"),
    "float32": (2, ">f"),
}


def register_count(type_name: str) -> int:
    """How many 16-bit registers a value of ``type_name`` occupies."""
    return REGISTER_TYPES[type_name][0]


def check_word_order(word_order: str) -> None:
    if word_order not in WORD_ORDERS:
        raise ValueError(f"word order {word_order!r} is not one of {', '.join(WORD_ORDERS)}")


def decode(registers: list[int], type_name: str, word_order: str = "high_word_first") -> float:
    """Decode one value of ``type_name`` from its registers (exactly ``register_count``)."""
    count, fmt = REGISTER_TYPES[type_name]
    if len(registers) != count:
        raise ValueError(f"{type_name} needs {count} registers, got {len(registers)}")
    check_word_order(word_order)
    words = list(registers)
    if count == 2 and word_order == "low_word_first":
        words.reverse()
    raw = b"".join(struct.pack(">H", word & 0xFFFF) for word in words)
    return struct.unpack(fmt, raw)[0]


def encode(value: float, type_name: str, word_order: str = "high_word_first") -> list[int]:
    """Encode ``value`` as the registers of ``type_name`` (integers are rounded)."""
    count, fmt = REGISTER_TYPES[type_name]
    check_word_order(word_order)
    number = float(value) if type_name == "float32" else int(round(value))
    raw = struct.pack(fmt, number)
    words = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, 2 * count, 2)]
    if count == 2 and word_order == "low_word_first":
        words.reverse()
    return words


def swapped(word_order: str) -> str:
    """The other word order (the simulators' ``word_order`` fault sends this one)."""
    check_word_order(word_order)
    return "high_word_first" if word_order == "low_word_first" else "low_word_first"


def crc16_modbus(frame: bytes) -> int:
    """Modbus RTU CRC-16 (poly 0xA001 reflected, init 0xFFFF); sent low byte first."""
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def with_crc(frame: bytes) -> bytes:
    """Append the RTU CRC (low byte first) to ``frame``."""
    return frame + crc16_modbus(frame).to_bytes(2, "little")


def rtu_char_time_s(baudrate: int, bits_per_char: int = 11) -> float:
    """Time on the wire for one RTU character: 11 bits for 8N2/8E1, 10 for 8N1."""
    return bits_per_char / baudrate


def rtu_bits_per_char(parity: str, stopbits: int, bytesize: int = 8) -> int:
    """Start bit + data bits + parity bit (if any) + stop bits."""
    return 1 + bytesize + (0 if parity.upper() == "N" else 1) + stopbits
