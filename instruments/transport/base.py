"""What a driver may ask of its transport: one request, one framed reply, parsed.

The same driver runs on a ``SerialLink`` (real port or pty), a ``ScriptedTransport``
(byte-exact tests) or anything else with this shape (PyMeasure's adapter split).
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

from instruments.connection import ConnectionState
from instruments.transport.framing import Framing

Parser = Callable[[bytes], Any]

# pyserial checks a write's deadline after ``os.write`` returns, so a thread descheduled
# for a read timeout's length on a busy machine gets SerialTimeoutException for bytes that
# were written (and a retry would send a command twice). A write that cannot finish in
# WRITE_TIMEOUT_S means a wedged port (flow control, a dead adapter), never load: every
# request here is < 260 bytes, 0.14 s even at 19,200 baud.
WRITE_TIMEOUT_S = 2.0


@runtime_checkable
class ByteTransport(Protocol):
    name: str

    def query(
        self,
        request: bytes,
        parse: Parser | None = None,
        *,
        framing: Framing | None = None,
        timeout_s: float | None = None,
        retry: bool = True,
    ) -> Any:
        """Send ``request``, read one frame, return ``parse(frame)`` (or the frame).

        ``parse`` raises WireProtocolError for a reply that does not parse (the transport
        may then retry) and DeviceRejected/DeviceAlarm for a refusal (never retried).
        ``retry=False`` for commands that must not be sent twice.
        """
        ...

    @property
    def connection_state(self) -> ConnectionState: ...

    def close(self) -> None: ...
