"""The instruments' exceptions (httpx-style): one root, a small tree of precise leaves.

pyserial and pymodbus exceptions are mapped into this tree once, at the transport
boundary; nothing above the transports sees a third-party exception.
"""

from twin.errors import ChipTwinError


class InstrumentError(ChipTwinError, RuntimeError):
    """Root: anything that went wrong talking to an instrument."""


class TransportError(InstrumentError):
    """The link itself failed (port, socket, bus)."""


class DeviceTimeout(TransportError):
    """No (complete) reply within the timeout, after the bounded retries."""


class DeviceLost(TransportError):
    """The device is gone (unplugged, port vanished, server down) and could not be found again."""


class WireProtocolError(InstrumentError):
    """A reply that does not parse: garbled, truncated, bad CRC, unexpected frame."""


class DeviceRejected(InstrumentError):
    """The device understood and refused (NE-1000 `?OOR`, a Modbus exception reply, …)."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class DeviceAlarm(InstrumentError):
    """The device reports an alarm (pump stalled, reset after power loss, …)."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class ConfigError(InstrumentError, ValueError):
    """A rig file or setpoint that is invalid; raised before anything is sent to a device."""


class SetpointOutOfRange(ConfigError):
    """A setpoint outside the device's or the chip's limits (checked with units, before sending)."""
