"""Finding a serial device again: by fixed path, by USB identity, or by a callable.

A USB-serial adapter that drops out usually comes back under another path
(``/dev/ttyUSB0`` → ``/dev/ttyUSB1``); its serial number and VID:PID stay the same, so a
link configured by identity asks ``serial.tools.list_ports`` again after each drop-out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from serial.tools import list_ports

from instruments.errors import ConfigError

PortLocator = Callable[[], "str | None"]


@dataclass(frozen=True)
class UsbIdentity:
    """Which adapter: its USB serial number and/or VID:PID (e.g. FTDI 0x0403:0x6001)."""

    serial_number: str | None = None
    vid: int | None = None
    pid: int | None = None

    def __post_init__(self) -> None:
        if self.serial_number is None and self.vid is None and self.pid is None:
            raise ConfigError("a USB identity needs a serial number or a VID/PID; give at least one")

    def matches(self, info: Any) -> bool:
        """``info`` is a ``serial.tools.list_ports_common.ListPortInfo``."""
        return (
            (self.serial_number is None or getattr(info, "serial_number", None) == self.serial_number)
            and (self.vid is None or getattr(info, "vid", None) == self.vid)
            and (self.pid is None or getattr(info, "pid", None) == self.pid)
        )


def find_usb_port(identity: UsbIdentity, comports: Callable[[], Iterable[Any]] = list_ports.comports) -> str | None:
    """The device path of the first port matching ``identity``, or None."""
    for info in sorted(comports(), key=lambda i: i.device):
        if identity.matches(info):
            return str(info.device)
    return None


def usb_locator(identity: UsbIdentity, comports: Callable[[], Iterable[Any]] = list_ports.comports) -> PortLocator:
    return lambda: find_usb_port(identity, comports)


def fixed_port(path: str) -> PortLocator:
    return lambda: path
