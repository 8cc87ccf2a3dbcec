"""``devices check``: talk to every instrument of a rig and report state, identity and a reading.

Each device is asked for its identity and one live reading (a sensor's ``read()``, a
pump's status and dispensed volume); any InstrumentError is caught and reported for that
device alone, so one dead device never hides the state of the others.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from instruments.capabilities import Pump, Sensor
from instruments.errors import InstrumentError
from instruments.rig.factory import RigDevices
from twin.units import ureg


@dataclass
class DeviceReport:
    name: str
    driver: str
    endpoint: str
    ok: bool = False
    state: str = "unknown"
    identity: str = ""
    readings: list[dict] = field(default_factory=list)  # {quantity, value, unit, status}
    error: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def reading_text(self, limit: int = 2) -> str:
        """The first ``limit`` readings, short units (``oxygen_air_saturation=70 %``)."""
        shown = [f"{r['quantity']}={r['value']:.4g} {_short(r['unit'])}" for r in self.readings[:limit]]
        return ", ".join(shown) + (f" (+{len(self.readings) - limit})" if len(self.readings) > limit else "")


def _short(unit: str) -> str:
    try:
        return f"{ureg.Unit(unit):~P}"
    except (ValueError, AttributeError, KeyError):
        return unit


def _readings(device: object) -> list[dict]:
    if isinstance(device, Sensor):
        return [{"quantity": m.quantity, "value": m.value, "unit": m.unit, "status": m.status} for m in device.read()]
    if isinstance(device, Pump):
        volume = device.dispensed().to("mL")
        running = device.is_running()
        return [
            {"quantity": "dispensed", "value": float(volume.magnitude), "unit": "mL", "status": 0},
            {"quantity": "running", "value": float(running), "unit": "dimensionless", "status": 0},
        ]
    return []


def check_device(name: str, driver: str, devices: RigDevices) -> DeviceReport:
    report = DeviceReport(name, driver, devices.endpoints.get(name, "?"))
    if name in devices.failed:
        report.state, report.error = "lost", devices.failed[name]
        return report
    device = devices.devices[name]
    try:
        report.identity = device.identity()
        report.readings = _readings(device)
        report.ok = True
    except InstrumentError as exc:
        report.error = f"{type(exc).__name__}: {exc}"
    report.state = device.connection_state.value
    report.ok = report.ok and report.state == "ok"
    return report


def check_rig(drivers: dict[str, str], devices: RigDevices) -> list[DeviceReport]:
    """One report per instrument (``drivers``: instrument name → driver), in rig-file order."""
    return [check_device(name, driver, devices) for name, driver in drivers.items()]
