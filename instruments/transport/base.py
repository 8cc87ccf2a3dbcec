"""What a driver may ask of its transport: one request, one framed reply, parsed.

The same driver runs on a ``SerialLink`` (real port or pty), a ``ScriptedTransport``
(byte-exact tests) or anything else with this shape (PyMeasure's adapter split).
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

from instruments.connection import ConnectionState
from instruments.transport.framing import Framing

Parser = Callable[[bytes], Any]


@runtime_checkable
class ByteTransport(Protocol):
    name: str

    def query(self, request: bytes, parse: Parser | None = None, *, framing: Framing | None = None,
              timeout_s: float | None = None, retry: bool = True) -> Any:
        """Send ``request``, read one frame, return ``parse(frame)`` (or the frame).

        ``parse`` raises ProtocolError for a reply that does not parse (the transport
        may then retry) and DeviceRejected/DeviceAlarm for a refusal (never retried).
        ``retry=False`` for commands that must not be sent twice.
        """
        ...

    @property
    def connection_state(self) -> ConnectionState: ...

    def close(self) -> None: ...
