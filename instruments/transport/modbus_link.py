"""Modbus transport over pymodbus (sync clients, 3.16 API): one shared client per bus.

A *bus* is one RS-485 line (RTU) or one TCP endpoint (a sensor or a TCP→RS-485
gateway). All devices on it share one pymodbus client behind a lock; each device
(unit/slave id) has its own :class:`ModbusDeviceLink` with its own ConnectionHealth.

Why: pymodbus counts unanswered requests per *client* and, past ``retries + 3``, closes
the connection (TCP) — which silences every healthy device on the same line because of
one dead one. Here pymodbus does no retries of its own and its disconnect counter is
disabled; retries, back-off and "lost" are decided per device, back-off is slept
*outside* the bus lock, a lost device fails fast (DeviceLost) until its next probe, and
the bus is re-opened transparently whenever pymodbus (or the OS) closed it.

Errors are mapped here, once: exception reply → DeviceRejected(code); no reply →
DeviceTimeout; bytes that never formed a valid frame (garbled, bad CRC) → WireProtocolError;
port/socket failures → TransportError; a device past ``failures_until_lost`` → DeviceLost.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

import serial
from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from instruments.connection import ConnectionHealth, ConnectionState, RetryPolicy
from instruments.errors import (
    DeviceLost,
    DeviceRejected,
    DeviceTimeout,
    InstrumentError,
    TransportError,
    WireProtocolError,
)
from instruments.transport.rtu_client import RtuClient

READ_FUNCTIONS = (3, 4)  # read holding registers, read input registers
_NEVER_DISCONNECT = 2**31  # pymodbus' per-client "close after N unanswered" counter, disabled


@dataclass(frozen=True)
class TcpEndpoint:
    """A Modbus TCP server (a sensor, or a gateway to an RS-485 line)."""

    host: str
    port: int = 502

    def describe(self) -> str:
        return f"tcp://{self.host}:{self.port}"


@dataclass(frozen=True)
class RtuLine:
    """An RS-485 line. Hamilton Arc default 19200 8N2 is *unconfirmed*; Hach LDO 19200 8N1."""

    port: str
    baudrate: int = 19200
    parity: str = "N"
    stopbits: int = 2
    bytesize: int = 8

    def describe(self) -> str:
        return f"rtu://{self.port}@{self.baudrate}/{self.bytesize}{self.parity}{self.stopbits}"


class _FairLock:
    """A FIFO (ticket) lock: a device waiting for the line gets it before a retrying one returns."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._next_ticket = 0
        self._serving = 0

    def __enter__(self) -> None:
        with self._condition:
            ticket, self._next_ticket = self._next_ticket, self._next_ticket + 1
            self._condition.wait_for(lambda: self._serving == ticket)

    def __exit__(self, *exc: object) -> None:
        with self._condition:
            self._serving += 1
            self._condition.notify_all()


class ModbusBus:
    """One pymodbus client shared by every device on one line; thread-safe.

    ``read_once`` performs exactly one request (no retries) under the bus lock and maps
    every failure into ``instruments.errors``. ``reopen_count`` counts transparent
    re-opens after pymodbus or the OS closed the link.
    """

    def __init__(
        self, endpoint: TcpEndpoint | RtuLine, policy: RetryPolicy | None = None, name: str | None = None
    ) -> None:
        self.endpoint = endpoint
        self.policy = policy or RetryPolicy()
        self.name = name or endpoint.describe()
        self.reopen_count = 0
        self._lock = _FairLock()
        self._rx_bytes = 0
        self._opened_once = False
        self._client = self._make_client()

    def _make_client(self) -> ModbusTcpClient | RtuClient:
        timeout_s = self.policy.timeout_s
        if isinstance(self.endpoint, TcpEndpoint):
            client: ModbusTcpClient | RtuClient = ModbusTcpClient(
                self.endpoint.host,
                port=self.endpoint.port,
                timeout=timeout_s,
                retries=0,
                trace_packet=self._trace_packet,
                name=self.name,
            )
        else:
            line = self.endpoint
            client = RtuClient(  # frame-driven receive, t3.5 silence before each request
                line.port,
                baudrate=line.baudrate,
                parity=line.parity,
                stopbits=line.stopbits,
                bytesize=line.bytesize,
                timeout=timeout_s,
                retries=0,
                trace_packet=self._trace_packet,
                name=self.name,
            )
        client.set_max_no_responses(_NEVER_DISCONNECT)
        return client

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            self._rx_bytes += len(data)
        return data

    def device(
        self,
        unit_id: int,
        name: str,
        on_change: Callable[[str, ConnectionState, ConnectionState, str], None] | None = None,
    ) -> ModbusDeviceLink:
        """A per-device handle (own health, own retries) on this shared bus."""
        return ModbusDeviceLink(self, unit_id, name, on_change)

    def _ensure_open(self) -> None:
        if self._client.connected:
            return
        if self._opened_once:
            self.reopen_count += 1
        try:
            opened = self._client.connect()
        except (OSError, serial.SerialException, ModbusException) as exc:
            raise TransportError(f"{self.name}: cannot open ({exc}); check cable/port/server") from None
        if not opened:
            raise TransportError(
                f"{self.name}: cannot open (connection refused or port missing); "
                "check the cable, the port path or that the server runs"
            )
        self._opened_once = True

    def read_once(self, unit_id: int, function: int, address: int, count: int) -> list[int]:
        """One request, no retries: ``count`` registers from zero-based ``address``."""
        if function not in READ_FUNCTIONS:
            raise ValueError(f"read function must be 3 or 4, not {function}")
        what = f"{self.name} unit {unit_id} fc{function} @{address}+{count}"
        with self._lock:
            self._ensure_open()
            self._rx_bytes = 0
            reader = self._client.read_holding_registers if function == 3 else self._client.read_input_registers
            try:
                response = reader(address, count=count, device_id=unit_id)
            except ModbusIOException:
                if self._rx_bytes:
                    raise WireProtocolError(
                        f"{what}: {self._rx_bytes} bytes received but no valid frame (garbled / CRC error)"
                    ) from None
                raise DeviceTimeout(f"{what}: no reply within {self.policy.timeout_s} s") from None
            except ConnectionException as exc:
                self._drop()
                raise TransportError(f"{what}: link closed ({exc.string})") from None
            except ModbusException as exc:
                raise WireProtocolError(f"{what}: {exc}") from None
            except (OSError, serial.SerialException) as exc:
                self._drop()
                raise TransportError(f"{what}: {exc}") from None
        if response.isError():
            code = int(getattr(response, "exception_code", 0))
            raise DeviceRejected(f"{what}: Modbus exception code {code}", code=str(code))
        registers = list(response.registers)
        if len(registers) != count:
            raise WireProtocolError(f"{what}: expected {count} registers, got {len(registers)}")
        return registers

    def _drop(self) -> None:
        try:
            self._client.close()
        except (OSError, serial.SerialException):  # closing a vanished port
            pass

    @property
    def is_open(self) -> bool:
        return bool(self._client.connected)

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __enter__(self) -> ModbusBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ModbusDeviceLink:
    """One device (unit id) on a shared bus: bounded retries, back-off, its own health.

    A device in state LOST fails at once with DeviceLost (no bus time used) and is probed
    again once per ``policy.backoff_max_s``; a success brings it back to OK.
    """

    def __init__(
        self,
        bus: ModbusBus,
        unit_id: int,
        name: str,
        on_change: Callable[[str, ConnectionState, ConnectionState, str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock_s: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= unit_id <= 247:
            raise ValueError(f"Modbus unit id must be 0–247, not {unit_id}")
        self.bus, self.unit_id, self.name = bus, unit_id, name
        self.health = ConnectionHealth(name, bus.policy, on_change)
        self._sleep, self._clock_s = sleep, clock_s
        self._next_probe_s = 0.0

    @property
    def state(self) -> ConnectionState:
        return self.health.state

    def read_registers(
        self, address: int, count: int, function: int = 3, check: Callable[[list[int]], None] | None = None
    ) -> list[int]:
        """Read ``count`` registers at zero-based ``address``, retrying per the policy.

        ``check`` raises WireProtocolError for registers that cannot be this block's: on an RTU line a
        reply that came after its request timed out answers the next request (same unit, same length),
        and only the content shows it; such a reply is retried like a garbled frame."""
        policy = self.bus.policy
        lost = self.health.state is ConnectionState.LOST
        if lost and self._clock_s() < self._next_probe_s:
            raise DeviceLost(
                f"{self.name}: lost ({self.health.last_error}); "
                f"next probe in {self._next_probe_s - self._clock_s():.1f} s"
            )
        attempts = 1 if lost else policy.retries + 1
        last: InstrumentError | None = None
        for attempt in range(attempts):
            try:
                registers = self.bus.read_once(self.unit_id, function, address, count)
                if check is not None:
                    check(registers)
            except DeviceRejected:
                self.health.succeeded()  # it answered: the link is fine, the request was not
                raise
            except (TransportError, WireProtocolError) as exc:
                last = exc
                if self.health.failed(str(exc)) is ConnectionState.LOST:
                    self._next_probe_s = self._clock_s() + policy.backoff_max_s
                    raise DeviceLost(
                        f"{self.name}: lost after {self.health.consecutive_failures} failures; last: {exc}"
                    ) from exc
                if attempt + 1 < attempts:
                    self._sleep(policy.backoff_s(self.health.consecutive_failures))
                continue
            self.health.succeeded()
            return registers
        assert last is not None
        raise last
