"""What the runner may ask of a device: small runtime-checkable protocols (bluesky-style).

The runner depends on these, never on a vendor class. Quantities cross this boundary as
pint Quantities (the program's one registry, ``twin.units.ureg``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import pint

from instruments.connection import ConnectionState


@dataclass(frozen=True)
class Measurement:
    """One reading as a device gave it: value in ``unit``, device time, device status bits."""

    quantity: str
    value: float
    unit: str
    status: int = 0


@runtime_checkable
class Device(Protocol):
    name: str

    def identity(self) -> str: ...

    @property
    def connection_state(self) -> ConnectionState: ...

    def close(self) -> None: ...


@runtime_checkable
class Sensor(Device, Protocol):
    def read(self) -> list[Measurement]: ...


@runtime_checkable
class Pump(Device, Protocol):
    def set_rate(self, rate: pint.Quantity[float]) -> None: ...

    def dispense(self, volume: pint.Quantity[float], rate: pint.Quantity[float]) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def dispensed(self) -> pint.Quantity[float]: ...

    def is_running(self) -> bool: ...


@runtime_checkable
class MeteredPump(Pump, Protocol):
    """A pump whose setpoints and counter have a known resolution (the intent log's tolerance)."""

    def commanded_volume(self, volume: pint.Quantity[float]) -> pint.Quantity[float]: ...

    def counter_resolution(self, reading: pint.Quantity[float]) -> pint.Quantity[float]: ...


@runtime_checkable
class Stoppable(Protocol):
    def stop(self) -> None: ...
