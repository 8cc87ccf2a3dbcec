"""Simulated Modbus devices on the wire: Modbus TCP on a loopback port, Modbus RTU on a pty.

Both servers are this project's own small framers around a :class:`SimModbusBus`, not the
pymodbus server: the pty's master side is a bare file descriptor with no device path,
which pymodbus's serial server cannot open, and per-request faults (silence, garbled
frames, wrong CRC, wrong word order) need control below pymodbus's datastore (whose
3.16 API is itself deprecated mid-migration). The drivers under test use the real
pymodbus *clients*, and mbpoll (libmodbus) is the independent third-party check.

Usage::

    bus = SimModbusBus([visiferm_do_sim(value_source=o2)], plan=plan, now_s=clock)
    with ModbusTcpSim(bus) as sim:        # sim.host, sim.port (a free port, bound to 0)
        ...
    with ModbusRtuSim(bus, baudrate=19200, enforce_timing=True) as sim:  # sim.port = /dev/pts/N
        ...

RTU byte timing (option ``enforce_timing``): a pty delivers bytes instantly, so the
server releases each reply at the moment its last byte would arrive on a real line —
(request chars + 3.5 + reply chars) × char time after the request arrived, with char
time = bits per char / baud (11 bits for 8N2 or 8E1, 10 for 8N1). The line is half-duplex:
a request sent before the line had 3.5 chars of silence after the previous reply is
charged as if its first byte went out only then, so a client ignoring the gap cannot beat
the line rate; such requests are counted in ``early_requests`` (with or without timing).
"""

from __future__ import annotations

import os
import random
import select
import socket
import struct
import threading
import time
import tty
from typing import Callable, Self

from instruments.sim.clients import ClientLog, device_id, flock_holder, tcp_client_pid
from instruments.sim.modbus_devices import SimModbusBus, SimReply
from instruments.transport.modbus_codec import crc16_modbus, rtu_bits_per_char, with_crc

POLL_S = 0.05


class _ServerThread:
    """start()/stop()/context manager around one serving thread plus helpers."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.clients = ClientLog()  # connections accepted, bytes received per client pid

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name=f"{type(self).__name__}")
        self._threads.append(thread)
        thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        self._close()

    def _close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Self:
        raise NotImplementedError


class ModbusTcpSim(_ServerThread):
    """Modbus TCP (MBAP) server on ``host``; ``port=0`` picks a free port (``self.port``).

    Several unit ids may live on one server, as behind a TCP→RS-485 gateway. Frame faults:
    ``garbled``/``crc_error`` send a frame with a broken protocol id and scrambled body,
    ``truncated`` sends a frame whose MBAP length promises more than follows.
    """

    def __init__(self, bus: SimModbusBus, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__()
        self.bus, self.host, self._requested_port = bus, host, port
        self.port = 0
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []

    def start(self) -> Self:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self._requested_port))
        listener.listen(8)
        listener.settimeout(POLL_S)
        self._listener, self.port = listener, listener.getsockname()[1]
        self._spawn(self._accept_loop)
        return self

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                connection, peer = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            connection.settimeout(POLL_S)
            self._connections.append(connection)
            self.clients.connected()
            self._spawn(self._serve, connection, peer)

    def _serve(self, connection: socket.socket, peer: tuple[str, int]) -> None:
        buffer = b""
        client_pid = tcp_client_pid(peer, (self.host, self.port))  # while the client is surely connected
        while not self._stop.is_set():
            try:
                chunk = connection.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            if not chunk:
                break
            self.clients.received(len(chunk), client_pid)
            buffer += chunk
            while len(buffer) >= 7:
                tid, pid, length, unit = struct.unpack(">HHHB", buffer[:7])
                if len(buffer) < 6 + length:
                    break
                pdu, buffer = buffer[7 : 6 + length], buffer[6 + length :]
                frame = self._frame(tid, unit, self.bus.reply(unit, pdu))
                if frame:
                    try:
                        connection.sendall(frame)
                    except OSError:
                        return

    @staticmethod
    def _frame(tid: int, unit: int, reply: SimReply) -> bytes | None:
        if reply.pdu is None:
            return None
        if reply.corrupt == "truncated":
            return struct.pack(">HHHB", tid, 0, len(reply.pdu) + 1 + 8, unit) + reply.pdu
        if reply.corrupt:
            scrambled = bytes(random.getrandbits(8) for _ in reply.pdu)
            return struct.pack(">HHHB", tid, 0xFFFF, len(reply.pdu) + 1, unit) + scrambled
        return struct.pack(">HHHB", tid, 0, len(reply.pdu) + 1, unit) + reply.pdu

    def _close(self) -> None:
        for connection in self._connections:
            connection.close()
        self._connections.clear()
        if self._listener is not None:
            self._listener.close()
            self._listener = None


class ModbusRtuSim(_ServerThread):
    """Modbus RTU server on the master side of a pty; clients open ``self.port`` (the slave path).

    Requests are framed by length (8 bytes for functions 1–6) and CRC; bytes that never
    form a valid frame are dropped after a silence, as a real slave does. Frame faults:
    ``garbled`` random bytes, ``crc_error`` a valid frame with a wrong CRC, ``truncated``
    the last three bytes missing.
    """

    def __init__(
        self,
        bus: SimModbusBus,
        *,
        baudrate: int = 19200,
        parity: str = "N",
        stopbits: int = 2,
        enforce_timing: bool = False,
    ) -> None:
        super().__init__()
        self.bus, self.baudrate, self.enforce_timing = bus, baudrate, enforce_timing
        self.char_time_s = rtu_bits_per_char(parity, stopbits) / baudrate
        self.port = ""
        self._master = self._slave = -1
        self._bus_free_at_s = 0.0  # end of the previous reply + 3.5 chars of silence
        self.early_requests = 0  # requests that broke the 3.5-char silence after a reply

    def start(self) -> Self:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # kept open: the line stays up while clients come and go
        self.port = os.ttyname(self._slave)
        self._slave_key = device_id(self._slave)
        self._spawn(self._serve)
        return self

    def _serve(self) -> None:
        buffer, last_rx_s = b"", time.monotonic()
        silence_s = max(3.5 * self.char_time_s, 0.02)
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], POLL_S / 5)
            if ready:
                try:
                    chunk = os.read(self._master, 1024)
                except OSError:
                    continue
                last_rx_s = time.monotonic()
                self.clients.received(len(chunk), flock_holder(self._slave_key))
                buffer += chunk
            while len(buffer) >= 8 and crc16_modbus(buffer[:8]) == 0:  # CRC over frame+CRC is 0
                request, buffer = buffer[:8], buffer[8:]
                self._answer(request, last_rx_s)
            if buffer and not ready and time.monotonic() - last_rx_s > silence_s:
                buffer = b""  # noise or an unsupported frame: a real slave ignores it

    def _answer(self, request: bytes, received_s: float) -> None:
        reply = self.bus.reply(request[0], request[1:-2])
        if reply.pdu is None:
            return
        frame = self._corrupt(with_crc(bytes([request[0]]) + reply.pdu), reply.corrupt)
        if received_s < self._bus_free_at_s:
            self.early_requests += 1
        if self.enforce_timing:
            chars = len(request) + 3.5 + len(frame)
            release_s = max(received_s, self._bus_free_at_s) + chars * self.char_time_s
            time.sleep(max(0.0, release_s - time.monotonic()))
        # stamped before the write: a client cannot see the reply earlier than this
        released_s = time.monotonic()
        self._bus_free_at_s = released_s + 3.5 * self.char_time_s
        os.write(self._master, frame)

    @staticmethod
    def _corrupt(frame: bytes, kind: str | None) -> bytes:
        if kind == "garbled":
            return bytes(random.getrandbits(8) for _ in frame)
        if kind == "crc_error":
            return frame[:-2] + bytes([frame[-2] ^ 0xFF, frame[-1] ^ 0xFF])
        if kind == "truncated":
            return frame[:-3]
        return frame

    def _close(self) -> None:
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1
