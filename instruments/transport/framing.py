"""Framing strategies: small objects that say where one reply (or request) ends.

A framing object looks at the bytes received so far and either cuts one complete frame
off the front of the buffer or says "not yet". Transports (real or simulated) use them to
know when to stop reading; drivers and simulators never scan for terminators themselves.
"""

from __future__ import annotations

from typing import Protocol

STX = 0x02
ETX = 0x03


class Framing(Protocol):
    def extract(self, buffer: bytearray) -> bytes | None:
        """Remove and return the first complete frame in ``buffer``, or None if incomplete."""
        ...


class TerminatorFraming:
    """Frames end with a terminator (``b"\\r"``, ``b"\\r\\n"``, ``b"\\n"``); the terminator is kept."""

    def __init__(self, terminator: bytes = b"\r\n") -> None:
        if not terminator:
            raise ValueError("a terminator framing needs at least one terminator byte")
        self.terminator = terminator

    def extract(self, buffer: bytearray) -> bytes | None:
        end = buffer.find(self.terminator)
        if end < 0:
            return None
        end += len(self.terminator)
        frame = bytes(buffer[:end])
        del buffer[:end]
        return frame

    def __repr__(self) -> str:
        return f"TerminatorFraming({self.terminator!r})"


class SingleByteFraming:
    """Replies of exactly one byte (Reglo ICC ``*``, ``#``, ``+``, ``-``): no terminator at all."""

    def extract(self, buffer: bytearray) -> bytes | None:
        if not buffer:
            return None
        frame = bytes(buffer[:1])
        del buffer[:1]
        return frame


class StxEtxFraming:
    """NE-1000 basic mode: STX … ETX. Bytes before the first STX are line noise and dropped."""

    def extract(self, buffer: bytearray) -> bytes | None:
        start = buffer.find(bytes([STX]))
        if start < 0:
            return None
        end = buffer.find(bytes([ETX]), start + 1)
        if end < 0:
            return None
        frame = bytes(buffer[start : end + 1])
        del buffer[: end + 1]
        return frame


class LengthPrefixedStxFraming:
    """NE-1000 safe mode: STX, length, data, CRC hi, CRC lo, ETX.

    The frame is cut by its length byte, not by scanning for ETX, because CRC bytes and
    the length itself may equal 0x03. ``length_extra`` is how many bytes the length byte
    counts beyond the data (default 4: the length byte, two CRC bytes and ETX; this
    reading of the NE-1000 manual is *unconfirmed* — see ``drivers.ne1000_protocol``).
    """

    def __init__(self, length_extra: int = 4) -> None:
        self.length_extra = length_extra

    def extract(self, buffer: bytearray) -> bytes | None:
        start = buffer.find(bytes([STX]))
        if start < 0 or len(buffer) < start + 2:
            return None
        total = 1 + buffer[start + 1]  # STX + what the length byte counts
        if buffer[start + 1] < self.length_extra:
            total = 2  # impossible length: hand over STX+length so the parser can reject it
        if len(buffer) < start + total:
            return None
        frame = bytes(buffer[start : start + total])
        del buffer[: start + total]
        return frame
