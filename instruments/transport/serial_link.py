"""SerialLink: pyserial with timeouts, bounded retries, health, and re-finding the device.

One request, one reply (every device here answers each command). Per call:

1. A LOST link fails fast with DeviceLost until its back-off has passed (then one probe).
2. Otherwise up to ``1 + policy.retries`` attempts with exponential back-off between
   them; each attempt's outcome goes to ``ConnectionHealth``.
3. An I/O failure, or the health reaching RECONNECTING, closes the port; the next attempt
   asks the locator again for the current path — a USB adapter that re-enumerated under
   another name (found by serial number / VID:PID) or a pty simulator that vanished and
   reappeared is found there.

pyserial's exceptions (SerialException, SerialTimeoutException, OSError) are mapped into
``instruments.errors`` in ``_map_serial_error`` and ``_ensure_open`` and nowhere else.
Ports are opened exclusively (an flock): a port another process holds is ``PortBusy``.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import serial

from instruments.connection import ConnectionHealth, ConnectionState, RetryPolicy
from instruments.errors import (
    DeviceAlarm,
    DeviceLost,
    DeviceRejected,
    DeviceTimeout,
    InstrumentError,
    TransportError,
    WireProtocolError,
)
from instruments.transport.base import WRITE_TIMEOUT_S, Parser
from instruments.transport.framing import Framing
from instruments.transport.usb import PortLocator, UsbIdentity, fixed_port, usb_locator

log = logging.getLogger("instruments.transport.serial")

try:  # termios.error is not an OSError; pyserial lets it through from tcflush on a dead pty
    import termios

    _PORT_ERRORS: tuple[type[BaseException], ...] = (serial.SerialException, OSError, termios.error)
except ImportError:  # pragma: no cover - Windows
    _PORT_ERRORS = (serial.SerialException, OSError)


@dataclass(frozen=True)
class SerialSettings:
    """Line settings; defaults 9600 8N1. NE-1000: 19200 8N1."""

    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: float = 1


class PortBusy(DeviceLost):
    """Another process holds the port's exclusive lock (retried like a lost device: it may let go)."""


def _is_lock_refusal(exc: BaseException) -> bool:
    return getattr(exc, "errno", None) in (errno.EAGAIN, errno.EWOULDBLOCK) or "exclusively lock" in str(exc)


def _map_serial_error(exc: BaseException, where: str) -> TransportError:
    """The one place where pyserial/OS errors become instrument errors."""
    if isinstance(exc, serial.SerialTimeoutException):
        return DeviceTimeout(f"{where}: write timed out ({exc})")
    return TransportError(f"{where}: port I/O failed ({exc}); the link will reopen and re-find the device")


class SerialLink:
    """A serial connection to one device (or one RS-232 daisy chain).

    ``locate`` is a port path (``"/dev/ttyUSB0"``), a ``UsbIdentity`` (re-resolved through
    ``serial.tools.list_ports`` after every drop-out) or a callable returning the current
    path or None (a pty simulator's ``lambda: sim.path``).
    """

    def __init__(
        self,
        name: str,
        locate: str | UsbIdentity | PortLocator,
        framing: Framing,
        *,
        settings: SerialSettings = SerialSettings(),
        policy: RetryPolicy | None = None,
        health: ConnectionHealth | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.framing = framing
        self.settings = settings
        self.policy = policy or (health.policy if health else RetryPolicy())
        self.health = health or ConnectionHealth(name, self.policy)
        self._locate = _as_locator(locate)
        self._clock, self._sleep = clock, sleep
        self._serial: serial.Serial | None = None
        self._retry_at_s = 0.0
        self._lock = threading.RLock()

    # -- public -------------------------------------------------------------------------
    @property
    def connection_state(self) -> ConnectionState:
        return self.health.state

    @property
    def port(self) -> str | None:
        """The path currently open, or None."""
        return self._serial.port if self._serial is not None else None

    def open(self) -> None:
        """Open now (otherwise the first query opens); raises DeviceLost if not found."""
        with self._lock:
            self._ensure_open()

    def close(self) -> None:
        with self._lock:
            self._drop()

    def query(
        self,
        request: bytes,
        parse: Parser | None = None,
        *,
        framing: Framing | None = None,
        timeout_s: float | None = None,
        retry: bool = True,
    ) -> Any:
        with self._lock:
            self._fail_fast_if_lost()
            probing = self.health.state == ConnectionState.LOST
            attempts = 1 if probing or not retry else 1 + self.policy.retries
            last: InstrumentError | None = None
            for attempt in range(attempts):
                if attempt:
                    self._sleep(self.policy.backoff_s(self.health.consecutive_failures))
                try:
                    frame = self._exchange(request, framing or self.framing, timeout_s or self.policy.timeout_s)
                    result = parse(frame) if parse is not None else frame
                except (DeviceRejected, DeviceAlarm):
                    self.health.succeeded()  # the device answered: the link is fine
                    raise
                except (TransportError, WireProtocolError) as exc:
                    last = exc
                    if self._record_failure(exc) == ConnectionState.LOST:
                        break
                    continue
                self.health.succeeded()
                return result
            assert last is not None
            raise self._final_error(last) from last

    # -- internals ----------------------------------------------------------------------
    def _fail_fast_if_lost(self) -> None:
        if self.health.state == ConnectionState.LOST and self._clock() < self._retry_at_s:
            wait_s = self._retry_at_s - self._clock()
            raise DeviceLost(
                f"{self.name}: device lost ({self.health.last_error}); next attempt in {wait_s:.1f} s. "
                "Check cable and power; the link re-finds the device by itself."
            )

    def _record_failure(self, exc: InstrumentError) -> ConnectionState:
        state = self.health.failed(f"{type(exc).__name__}: {exc}")
        log.warning("%s: %s (%s, %d consecutive)", self.name, exc, state.value, self.health.consecutive_failures)
        port_failed = isinstance(exc, TransportError) and not isinstance(exc, DeviceTimeout)
        if port_failed or state in (ConnectionState.RECONNECTING, ConnectionState.LOST):
            self._drop()
        if state == ConnectionState.LOST:
            self._retry_at_s = self._clock() + self.policy.backoff_s(self.health.consecutive_failures)
        return state

    def _final_error(self, last: InstrumentError) -> InstrumentError:
        if self.health.state == ConnectionState.LOST:
            return DeviceLost(
                f"{self.name}: device lost after {self.health.consecutive_failures} consecutive "
                f"failures (last: {last}); retried at back-off, check cable and power"
            )
        return last

    def _ensure_open(self) -> serial.Serial:
        if self._serial is not None:
            return self._serial
        path = self._locate()
        if not path:
            raise DeviceLost(f"{self.name}: no serial port matches; is the device plugged in?")
        s = self.settings
        try:
            # exclusive: an flock on the port, so a second process (a second runner, a stray
            # terminal program using pyserial) can never interleave its frames with ours
            port = serial.Serial(
                path,
                baudrate=s.baudrate,
                bytesize=s.bytesize,
                parity=s.parity,
                stopbits=s.stopbits,
                timeout=self.policy.timeout_s,
                write_timeout=WRITE_TIMEOUT_S,
                exclusive=True,
            )
        except (*_PORT_ERRORS, ValueError) as exc:
            if _is_lock_refusal(exc):
                raise PortBusy(
                    f"{self.name}: {path} is in use by another process (its exclusive lock was "
                    "refused); only one program may talk to a device — is another runner driving "
                    "this rig? see `chiptwin rig status`"
                ) from None
            raise DeviceLost(f"{self.name}: cannot open {path} ({exc}); will look for the device again") from None
        log.info("%s: opened %s", self.name, path)
        self._serial = port
        return port

    def _drop(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            try:
                port.close()
            except _PORT_ERRORS:
                pass  # closing a vanished port may fail; it is gone either way

    def _exchange(self, request: bytes, framing: Framing, timeout_s: float) -> bytes:
        port = self._ensure_open()
        where = f"{self.name} on {port.port}"
        try:
            port.reset_input_buffer()
            log.debug("%s >> %r", self.name, request)
            port.write(request)
            frame = self._read_frame(port, framing, timeout_s, where)
        except _PORT_ERRORS as exc:
            raise _map_serial_error(exc, where) from None
        log.debug("%s << %r", self.name, frame)
        return frame

    def _read_frame(self, port: serial.Serial, framing: Framing, timeout_s: float, where: str) -> bytes:
        deadline = self._clock() + timeout_s
        buffer = bytearray()
        while (remaining_s := deadline - self._clock()) > 0:
            if port.timeout != remaining_s:
                port.timeout = remaining_s
            buffer += port.read(max(1, port.in_waiting))
            frame = framing.extract(buffer)
            if frame is not None:
                return frame
        if buffer:
            raise WireProtocolError(f"{where}: truncated reply {bytes(buffer)!r} (frame not complete in {timeout_s} s)")
        raise DeviceTimeout(f"{where}: no reply within {timeout_s} s")


def _as_locator(locate: str | UsbIdentity | PortLocator) -> PortLocator:
    if isinstance(locate, str):
        return fixed_port(locate)
    if isinstance(locate, UsbIdentity):
        return usb_locator(locate)
    return locate
