"""From a validated rig to driver objects: ``open_rig(rig, resolver=...) -> RigDevices``.

Devices that share a line share one link: NE-1000s daisy-chained on one serial port share
one ``SerialLink``; Modbus devices on one TCP endpoint (gateway) or one RS-485 line share
one ``ModbusBus``. Links open on first use, so one absent device does not stop the
others: a device whose driver cannot even be built (e.g. no USB adapter with its serial
number) is listed in ``RigDevices.failed`` with the reason.

A *resolver* decides where each instrument really is: by default its rig-file
connection; ``endpoints_resolver(document)`` points every instrument at the simulated
rig's ptys and ports instead (the JSON ``chiptwin sim-rig`` writes).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from instruments.capabilities import Device
from instruments.connection import RetryPolicy
from instruments.drivers.hamilton import PhArc, VisiFermDO
from instruments.drivers.modbus_sensor import ModbusRegisterSensor, RegisterMap
from instruments.drivers.ne1000 import NE1000
from instruments.drivers.reglo_icc import RegloICC
from instruments.drivers.teer import TeerMeter
from instruments.errors import ConfigError, InstrumentError
from instruments.rig.model import Rig
from instruments.rig.schema import ConnectionSpec, InstrumentSpec
from instruments.transport.framing import StxEtxFraming, TerminatorFraming
from instruments.transport.modbus_link import ModbusBus, RtuLine, TcpEndpoint
from instruments.transport.serial_link import SerialLink, SerialSettings
from instruments.transport.usb import UsbIdentity, find_usb_port

Resolver = Callable[[InstrumentSpec], ConnectionSpec]
DEFAULT_BAUD = {"ne1000": 19200, "reglo_icc": 9600, "teer": 9600}
SERIAL_FRAMING = {
    "ne1000": lambda: StxEtxFraming(),
    "reglo_icc": lambda: TerminatorFraming(b"\r\n"),
    "teer": lambda: TerminatorFraming(b"\n"),
}


def rig_file_resolver(instrument: InstrumentSpec) -> ConnectionSpec:
    return instrument.connection


def endpoints_resolver(document: dict[str, Any]) -> Resolver:
    """Connect to the endpoints a simulated rig published (``SimulatedRig.endpoints_document()``)."""
    endpoints = document.get("instruments", {})

    def resolve(instrument: InstrumentSpec) -> ConnectionSpec:
        override = endpoints.get(instrument.name)
        if override is None:
            raise ConfigError(
                f"the endpoints file has no entry for {instrument.name!r}; fix: start "
                "chiptwin sim-rig with the same rig file and use its endpoints file"
            )
        update = {"usb_serial": None, "usb_vid_pid": None, **override}
        return instrument.connection.model_copy(update=update)

    return resolve


def describe(connection: ConnectionSpec) -> str:
    if connection.kind == "tcp":
        return f"tcp://{connection.host}:{connection.port} unit {connection.unit_id}"
    where = connection.port or f"usb {connection.usb_serial or connection.usb_vid_pid}"
    suffix = (
        f" unit {connection.unit_id}"
        if connection.kind == "rtu"
        else (f" address {connection.address}" if connection.address is not None else "")
    )
    return f"{connection.kind}://{where}{suffix}"


class RigDevices:
    """Connected drivers by instrument name; a context manager that closes everything."""

    def __init__(self) -> None:
        self.devices: dict[str, Device] = {}
        self.endpoints: dict[str, str] = {}  # instrument -> where it was looked for
        self.failed: dict[str, str] = {}  # instrument -> why no driver could be built
        self.safe_actions: dict[str, str] = {}
        self._serial_links: dict[Any, SerialLink] = {}
        self._buses: dict[Any, ModbusBus] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self.devices:
            reason = self.failed.get(name, "not in the rig")
            raise ConfigError(f"no device {name!r} ({reason})")
        return self.devices[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.devices)

    def safe_state(self) -> dict[str, str]:
        """Put every device in its safe state (pumps stopped); returns errors by name (never raises)."""
        errors = {}
        for name, action in self.safe_actions.items():
            if action == "stop" and name in self.devices:
                try:
                    self.devices[name].stop()  # type: ignore[attr-defined]
                except InstrumentError as exc:
                    errors[name] = str(exc)
        return errors

    def close(self) -> None:
        for device in self.devices.values():
            device.close()
        for link in self._serial_links.values():
            link.close()
        for bus in self._buses.values():
            bus.close()
        self.devices.clear()

    def __enter__(self) -> RigDevices:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- building -----------------------------------------------------------------------
    def serial_link(self, instrument: InstrumentSpec, connection: ConnectionSpec, policy: RetryPolicy) -> SerialLink:
        key = connection.port or (connection.usb_serial, connection.usb_vid_pid)
        if key not in self._serial_links:
            locate: str | UsbIdentity = connection.port if isinstance(connection.port, str) else _usb(connection)
            settings = SerialSettings(
                baudrate=connection.baud or DEFAULT_BAUD[instrument.driver],
                parity=connection.parity,
                stopbits=connection.stopbits or 1,
            )
            self._serial_links[key] = SerialLink(
                instrument.name, locate, SERIAL_FRAMING[instrument.driver](), settings=settings, policy=policy
            )
        return self._serial_links[key]

    def modbus_bus(self, connection: ConnectionSpec, policy: RetryPolicy) -> ModbusBus:
        if connection.kind == "tcp":
            endpoint: TcpEndpoint | RtuLine = TcpEndpoint(str(connection.host), int(connection.port or 502))
        else:
            port = connection.port if isinstance(connection.port, str) else find_usb_port(_usb(connection))
            if port is None:
                raise InstrumentError(f"no serial port matches {describe(connection)}; is the adapter plugged in?")
            endpoint = RtuLine(
                port, baudrate=connection.baud or 19200, parity=connection.parity, stopbits=connection.stopbits or 2
            )
        key = endpoint.describe()
        if key not in self._buses:
            self._buses[key] = ModbusBus(endpoint, policy)
        return self._buses[key]


def _usb(connection: ConnectionSpec) -> UsbIdentity:
    vid = pid = None
    if connection.usb_vid_pid:
        vid, pid = (int(part, 16) for part in connection.usb_vid_pid.split(":"))
    return UsbIdentity(connection.usb_serial, vid, pid)


def _build(
    rig: Rig, devices: RigDevices, instrument: InstrumentSpec, connection: ConnectionSpec, policy: RetryPolicy
) -> Device:
    name, driver = instrument.name, instrument.driver
    if driver == "ne1000":
        return NE1000(
            devices.serial_link(instrument, connection, policy),
            address=connection.address or 0,
            syringe_diameter_mm=instrument.syringe_diameter_mm,
            chip_limits=rig.chip_limits(name),
            name=name,
        )
    if driver == "reglo_icc":
        return RegloICC(
            devices.serial_link(instrument, connection, policy),
            channel=connection.address or 1,
            name=name,
            chip_limits=rig.chip_limits(name),
        )
    if driver == "teer":
        return TeerMeter(devices.serial_link(instrument, connection, policy), instrument.wells, name=name)
    link = devices.modbus_bus(connection, policy).device(int(connection.unit_id or 1), name)
    if driver == "visiferm_do":
        return VisiFermDO(name, link, word_order=connection.word_order, function=connection.function)
    if driver == "ph_arc":
        return PhArc(name, link, word_order=connection.word_order, function=connection.function)
    register_map = RegisterMap.from_dicts([point.model_dump() for point in instrument.registers])
    return ModbusRegisterSensor(name, link, register_map)


def open_rig(rig: Rig, resolver: Resolver = rig_file_resolver, policy: RetryPolicy | None = None) -> RigDevices:
    """Driver objects for every instrument of ``rig`` (links open on first use)."""
    devices = RigDevices()
    policy = policy or RetryPolicy()
    try:
        for instrument in rig.instruments:
            devices.safe_actions[instrument.name] = rig.safe_action(instrument.name)
            try:
                connection = resolver(instrument)
                devices.endpoints[instrument.name] = describe(connection)
                devices.devices[instrument.name] = _build(rig, devices, instrument, connection, policy)
            except ConfigError:
                raise
            except InstrumentError as exc:
                devices.failed[instrument.name] = str(exc)
    except BaseException:
        devices.close()
        raise
    return devices


__all__ = ["RigDevices", "Resolver", "describe", "endpoints_resolver", "open_rig", "rig_file_resolver"]
