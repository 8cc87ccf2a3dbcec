"""pymodbus' sync RTU client, receiving frame-driven and keeping the 3.5-character silence.

Why a subclass (pymodbus 3.16):

- ``ModbusSerialClient.recv(None)`` polls ``in_waiting`` every 4 character times and
  returns only after one more poll saw no new byte: on a 19,200-baud line that costs
  ~3 ms (5 chars) after every reply, 13 % of a 40-char transaction. Its RTU framer
  already knows when a reply is complete (function code, byte count, CRC) and asks for
  more while it is not, so here ``recv`` hands over bytes as soon as they arrive.
- It sends the next request as soon as it has a reply, with no inter-frame silence. Modbus
  over serial line (V1.02 §2.5.1.1) requires t3.5 of silence between frames — 3.5 char
  times, fixed 1.75 ms above 19,200 baud — or a slave may merge or drop the request. Here
  each send waits until the line has been quiet that long since the last byte seen.
- A reply that arrives after its request timed out waits in the input buffer, and pymodbus
  would take it as the reply to the next request (same unit and function: another block's
  values read as this one's). Each send first discards what is waiting.
- pymodbus gives writes the read timeout (0.1 s here): a thread descheduled that long on a
  busy machine got a write timeout for a written request, and the link was dropped and
  reopened under every device on the line. Here writes get ``WRITE_TIMEOUT_S`` (base.py).
"""

from __future__ import annotations

import fcntl
import time

from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ConnectionException

from instruments.transport.base import WRITE_TIMEOUT_S
from instruments.transport.modbus_codec import rtu_bits_per_char


def rtu_silence_s(baudrate: int, parity: str = "N", stopbits: int = 2, bytesize: int = 8) -> float:
    """The inter-frame silence t3.5: 3.5 character times, 1.75 ms above 19,200 baud."""
    if baudrate > 19200:
        return 0.00175
    return 3.5 * rtu_bits_per_char(parity, stopbits, bytesize) / baudrate


class RtuClient(ModbusSerialClient):
    """A ModbusSerialClient (RTU framer) with event-driven receive and t3.5 before each send."""

    def __init__(
        self, port: str, *, baudrate: int, parity: str, stopbits: int, bytesize: int, **kwargs: object
    ) -> None:
        super().__init__(port, baudrate=baudrate, parity=parity, stopbits=stopbits, bytesize=bytesize, **kwargs)  # type: ignore[arg-type]
        self.silence_s = rtu_silence_s(baudrate, parity, stopbits, bytesize)
        self._char_s = rtu_bits_per_char(parity, stopbits, bytesize) / baudrate
        self._quiet_at_s = 0.0  # monotonic time from which the line counts as silent

    def connect(self) -> bool:
        opened = super().connect()
        if opened and self.socket is not None:
            if not _lock_exclusively(self.socket):  # another process drives this line: never share it
                self.close()
                return False
            self.socket.write_timeout = WRITE_TIMEOUT_S
        return opened

    def send(self, request: bytes, addr: tuple | None = None) -> int:
        if request:
            wait_s = self._quiet_at_s - time.monotonic()
            if wait_s > 0:
                time.sleep(wait_s)
            self._discard_late_reply()
        size = super().send(request, addr)
        # the request occupies the line until its last char is out (matters when no reply follows)
        self._quiet_at_s = time.monotonic() + len(request) * self._char_s + self.silence_s
        return size

    def _discard_late_reply(self) -> None:
        """Bytes waiting before a request are a late reply to one that already timed out (a slow slave, a
        descheduled thread): read as this request's reply they would answer it with another block's values."""
        try:
            if self.socket is not None and self.socket.in_waiting:
                self.socket.reset_input_buffer()
        except OSError:
            pass  # the port vanished: the send that follows reports it

    def recv(self, size: int | None) -> bytes:
        """``size`` None: block (port timeout) for the first byte, then return all that arrived."""
        if size is not None:
            return super().recv(size)
        if not self.socket:
            raise ConnectionException(str(self))
        try:
            data = self.socket.read(1)
            if data and (waiting := self.socket.in_waiting):
                data += self.socket.read(waiting)
        except OSError:  # includes serial.SerialException: the port vanished
            self.close()
            raise ConnectionException(str(self)) from None
        if data:
            self._quiet_at_s = time.monotonic() + self.silence_s
        return data


def _lock_exclusively(port: object) -> bool:
    """The flock pyserial's ``exclusive=True`` takes (pymodbus opens the port without it)."""
    try:
        fcntl.flock(port.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # type: ignore[attr-defined]
    except BlockingIOError:
        return False
    except (OSError, AttributeError):  # not a lockable file (a URL handler): the store's lease still guards it
        return True
    return True
