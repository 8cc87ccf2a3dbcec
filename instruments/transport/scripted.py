"""A scripted fake transport: the driver's bytes are checked against a script, byte for byte.

Each script entry is ``(expected_request, reply)``; ``reply`` is the raw bytes the device
would send (framed exactly as on the wire), ``None`` for "no reply" (DeviceTimeout), or an
exception instance to raise. The reply is cut with the same framing object the real link
would use, so a frame the framing would not accept fails here too.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Iterable

from instruments.connection import ConnectionState
from instruments.errors import DeviceTimeout, WireProtocolError
from instruments.transport.base import Parser
from instruments.transport.framing import Framing

ScriptEntry = tuple[bytes, "bytes | BaseException | None"]


class ScriptedTransport:
    def __init__(self, script: Iterable[ScriptEntry], framing: Framing | None = None, name: str = "scripted") -> None:
        self.name = name
        self.framing = framing
        self.sent: list[bytes] = []
        self._script: deque[ScriptEntry] = deque(script)
        self.closed = False

    @property
    def connection_state(self) -> ConnectionState:
        return ConnectionState.OK

    @property
    def remaining(self) -> list[ScriptEntry]:
        return list(self._script)

    def close(self) -> None:
        self.closed = True

    def query(
        self,
        request: bytes,
        parse: Parser | None = None,
        *,
        framing: Framing | None = None,
        timeout_s: float | None = None,
        retry: bool = True,
    ) -> Any:
        self.sent.append(request)
        if not self._script:
            raise AssertionError(f"{self.name}: unexpected request {request!r}; the script is exhausted")
        expected, reply = self._script.popleft()
        if request != expected:
            raise AssertionError(f"{self.name}: sent {request!r}, the script expected {expected!r}")
        if reply is None:
            raise DeviceTimeout(f"{self.name}: no reply (scripted)")
        if isinstance(reply, BaseException):
            raise reply
        frame = self._cut(reply, framing or self.framing)
        return parse(frame) if parse is not None else frame

    def _cut(self, reply: bytes, framing: Framing | None) -> bytes:
        if framing is None:
            return reply
        buffer = bytearray(reply)
        frame = framing.extract(buffer)
        if frame is None:
            raise WireProtocolError(f"{self.name}: truncated reply {reply!r} (scripted)")
        if buffer:
            raise AssertionError(f"{self.name}: scripted reply {reply!r} has bytes after the frame: {bytes(buffer)!r}")
        return frame
