"""Whole-rig checks of a parsed rig file, each error pointing at the line to fix.

Run after the pydantic shape check (``rig_schema``): unknown drivers, connections that do
not suit the driver, duplicated addresses on one bus, overlapping register maps,
references to missing chips/instruments, channel units that do not convert to the
measurement's unit, limits outside what the device can do, and two pumps feeding one
chip (a chip's dose would be the sum of two commands the runner cannot tell apart). A chip
that no pump feeds is valid here (sensing-only rigs); dosing it is refused by the protocol
check.
"""

from __future__ import annotations

from instruments.drivers import ne1000_protocol as ne1000
from instruments.drivers.teer import TEER_UNIT
from instruments.rig.schema import (
    DRIVERS,
    MODBUS_DRIVERS,
    PUMP_DRIVERS,
    SERIAL_DRIVERS,
    ChannelSpec,
    InstrumentSpec,
    RigFile,
)
from instruments.rig.toml_lines import TomlDocument
from instruments.transport.modbus_codec import register_count
from twin.errors import TwinError
from twin.units import PINT_PARSE_ERRORS, Q_, parse_quantity, parse_unit

REGLO_MAX_FLOW_ML_MIN = 35.0  # the driver's default tubing limit (*unconfirmed*, see reglo_icc)
_DO_PRIMARY = {"%-sat": ("oxygen_air_saturation", "percent"), "mg/L": ("dissolved_oxygen", "mg/L")}


def measurements_of(instrument: InstrumentSpec) -> dict[str, str]:
    """Measurement quantity → unit that the instrument's driver reports."""
    driver = instrument.driver
    if driver in PUMP_DRIVERS:
        return {"dispensed": "mL"}
    if driver == "teer":
        units = {}
        for well in instrument.wells:
            units |= {f"teer.{well}": TEER_UNIT, f"temperature.{well}": "degC", f"teer_corrected.{well}": TEER_UNIT}
        return units
    if driver == "visiferm_do":
        return dict([_DO_PRIMARY[instrument.do_unit], ("temperature", "degC")])
    if driver == "ph_arc":
        return {"pH": "dimensionless", "temperature": "degC"}
    return {point.quantity: point.unit for point in instrument.registers}


def validate(rig: RigFile, doc: TomlDocument) -> None:
    """Raise the first ConfigError found, in file order."""
    _unique_names(doc, "chips", [c.name for c in rig.chips])
    _unique_names(doc, "instruments", [i.name for i in rig.instruments])
    _unique_names(doc, "channels", [c.name for c in rig.channels])
    chips = {chip.name for chip in rig.chips}
    for index, chip in enumerate(rig.chips):
        for key, dimension in (
            ("max_flow", "[volume] / [time]"),
            ("max_dose_volume", "[volume]"),
            ("max_concentration", "[substance] / [volume]"),
        ):
            _quantity(doc, ("chips", index, "limits", key), getattr(chip.limits, key), dimension)
    for index, instrument in enumerate(rig.instruments):
        _instrument(doc, index, instrument, chips)
    _bus_addresses(doc, rig.instruments)
    _one_pump_per_chip(doc, rig.instruments)
    instruments = {i.name: i for i in rig.instruments}
    for index, channel in enumerate(rig.channels):
        _channel(doc, index, channel, instruments, chips)
    for name, action in rig.safe_state.items():
        if name not in instruments:
            raise doc.error(
                ("safe_state", name),
                f"safe state for unknown instrument {name!r}",
                f"use one of: {', '.join(instruments) or '(no instruments)'}",
            )
        if action == "stop" and instruments[name].driver not in PUMP_DRIVERS:
            raise doc.error(
                ("safe_state", name), f"{name!r} is a sensor and cannot be stopped", "write 'none' or remove the line"
            )


def _unique_names(doc: TomlDocument, section: str, names: list[str]) -> None:
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in seen:
            raise doc.error(
                (section, index, "name"),
                f"name {name!r} is used twice in [[{section}]] "
                f"(first at line {doc.line((section, seen[name], 'name'))})",
                "give each a unique name",
            )
        seen[name] = index


_EXAMPLES = {"[volume] / [time]": "50 uL/min", "[volume]": "0.2 mL", "[substance] / [volume]": "500 uM"}


def _quantity(doc: TomlDocument, path: tuple, text: str | None, dimension: str):
    """A positive, finite limit of ``dimension`` (None when the key is absent)."""
    if text is None:
        return None
    example = _EXAMPLES[dimension]
    try:
        value = parse_quantity(text, what=str(path[-1]), example=example)
    except TwinError:
        raise doc.error(
            path, f"{path[-1]}: cannot read {text!r} as a finite number and a unit", f"write e.g. {example!r}"
        ) from None
    if not value.check(dimension):
        raise doc.error(
            path, f"{text!r} is not a {dimension} quantity", f"give it in units of {dimension}, e.g. {example!r}"
        )
    if value.magnitude <= 0:
        raise doc.error(path, f"{text!r} must be positive", "give a positive limit or remove the line")
    return value


def _one_pump_per_chip(doc: TomlDocument, instruments: list[InstrumentSpec]) -> None:
    """A chip is fed by at most one pump: two would dose it with commands the runner cannot tell apart."""
    feeder: dict[str, int] = {}
    for index, instrument in enumerate(instruments):
        for chip in instrument.feeds:
            if chip in feeder and feeder[chip] != index:
                first = instruments[feeder[chip]]
                raise doc.error(
                    ("instruments", index, "feeds"),
                    f"chip {chip!r} is fed by two pumps: "
                    f"{first.name!r} (line {doc.line(('instruments', feeder[chip]))}) and "
                    f"{instrument.name!r}",
                    f"let one pump feed {chip!r}; remove it from the other's feeds",
                )
            feeder[chip] = index


def _instrument(doc: TomlDocument, index: int, instrument: InstrumentSpec, chips: set[str]) -> None:
    here = ("instruments", index)
    if instrument.driver not in DRIVERS:
        raise doc.error(
            here + ("driver",), f"unknown driver {instrument.driver!r}", f"use one of: {', '.join(DRIVERS)}"
        )
    _connection(doc, index, instrument)
    _no_repeats(doc, here + ("feeds",), instrument.feeds, f"{instrument.name!r} feeds")
    _no_repeats(doc, here + ("wells",), instrument.wells, f"{instrument.name!r} wells")
    for chip in instrument.feeds:
        if chip not in chips:
            raise doc.error(
                here + ("feeds",),
                f"{instrument.name!r} feeds chip {chip!r}, which is not in [[chips]]",
                f"use one of: {', '.join(sorted(chips)) or '(no chips)'}",
            )
    if instrument.feeds and instrument.driver not in PUMP_DRIVERS:
        raise doc.error(here + ("feeds",), f"{instrument.name!r} is a sensor; only pumps feed chips", "remove 'feeds'")
    if instrument.driver == "ne1000":
        _ne1000_limits(doc, index, instrument)
    elif instrument.driver == "reglo_icc":
        rate = _quantity(doc, here + ("limits", "max_rate"), instrument.limits.max_rate, "[volume] / [time]")
        if rate is not None and rate.to("mL/min").magnitude > REGLO_MAX_FLOW_ML_MIN:
            raise doc.error(
                here + ("limits", "max_rate"),
                f"max_rate {rate:~P} is above the Reglo ICC's {REGLO_MAX_FLOW_ML_MIN} mL/min",
                f"set at most {REGLO_MAX_FLOW_ML_MIN} mL/min",
            )
    elif instrument.driver == "modbus_sensor":
        _registers(doc, index, instrument)
    if instrument.driver == "teer" and not instrument.wells:
        raise doc.error(here, f"TEER meter {instrument.name!r} has no wells", 'add wells = ["A1", …]')


def _no_repeats(doc: TomlDocument, path: tuple, items: list[str], what: str) -> None:
    repeated = sorted({item for item in items if items.count(item) > 1})
    if repeated:
        raise doc.error(path, f"{what} names {', '.join(map(repr, repeated))} twice", "list each once")


def _connection(doc: TomlDocument, index: int, instrument: InstrumentSpec) -> None:
    connection, path = instrument.connection, ("instruments", index, "connection")
    if instrument.driver in SERIAL_DRIVERS and connection.kind != "serial":
        raise doc.error(
            path + ("kind",),
            f"{instrument.driver} talks over a serial line, not {connection.kind!r}",
            'write kind = "serial"',
        )
    if instrument.driver in MODBUS_DRIVERS and connection.kind == "serial":
        raise doc.error(
            path + ("kind",),
            f"{instrument.driver} is a Modbus device",
            'write kind = "tcp" (host, port) or "rtu" (port)',
        )
    if connection.kind == "tcp":
        if not connection.host or not isinstance(connection.port, int):
            raise doc.error(path, "a tcp connection needs host and a numeric port", 'add host = "…" and port = 502')
    elif not (isinstance(connection.port, str) or connection.usb_serial or connection.usb_vid_pid):
        raise doc.error(
            path,
            f"a {connection.kind} connection needs a port path or a USB identity",
            'add port = "/dev/ttyUSB0", usb_serial = "…" or usb_vid_pid = "0403:6001"',
        )
    if connection.usb_vid_pid is not None and not _vid_pid_ok(connection.usb_vid_pid):
        raise doc.error(
            path + ("usb_vid_pid",),
            f"usb_vid_pid {connection.usb_vid_pid!r} is not VID:PID",
            'write four hex digits each, e.g. "0403:6001"',
        )
    if instrument.driver in MODBUS_DRIVERS and not (connection.unit_id and 1 <= connection.unit_id <= 247):
        raise doc.error(
            path + ("unit_id",),
            f"Modbus unit id {connection.unit_id} is not 1–247",
            "set unit_id to the device's address (1–247)",
        )
    low, high = {"ne1000": (0, 99), "reglo_icc": (1, 8)}.get(instrument.driver, (None, None))
    if low is not None and connection.address is not None and not low <= connection.address <= high:
        raise doc.error(
            path + ("address",),
            f"{instrument.driver} address {connection.address} is outside {low}–{high}",
            f"use an address from {low} to {high}",
        )


def _vid_pid_ok(text: str) -> bool:
    parts = text.split(":")
    return len(parts) == 2 and all(len(p) == 4 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts)


def _ne1000_limits(doc: TomlDocument, index: int, instrument: InstrumentSpec) -> None:
    here = ("instruments", index)
    diameter_mm = instrument.syringe_diameter_mm
    if diameter_mm is None or not ne1000.DIAMETER_MIN_MM <= diameter_mm <= ne1000.DIAMETER_MAX_MM:
        raise doc.error(
            here + ("syringe_diameter_mm",),
            f"NE-1000 {instrument.name!r} needs a syringe diameter "
            f"of {ne1000.DIAMETER_MIN_MM}–{ne1000.DIAMETER_MAX_MM} mm (got {diameter_mm})",
            "set syringe_diameter_mm to the syringe's inner diameter",
        )
    rate = _quantity(doc, here + ("limits", "max_rate"), instrument.limits.max_rate, "[volume] / [time]")
    low_ul_min, high_ul_min = ne1000.rate_limits_ul_min(diameter_mm)
    if rate is not None and not low_ul_min <= rate.to("uL/min").magnitude <= high_ul_min:
        raise doc.error(
            here + ("limits", "max_rate"),
            f"max_rate {rate:~P} is outside the NE-1000's "
            f"{low_ul_min:.4g}–{high_ul_min:.4g} µL/min for a {diameter_mm} mm syringe",
            f"set max_rate within {low_ul_min:.4g}–{high_ul_min:.4g} uL/min or change the syringe",
        )
    _quantity(doc, here + ("limits", "max_volume"), instrument.limits.max_volume, "[volume]")


def _registers(doc: TomlDocument, index: int, instrument: InstrumentSpec) -> None:
    here = ("instruments", index)
    if not instrument.registers:
        raise doc.error(
            here,
            f"modbus_sensor {instrument.name!r} has no register map",
            "add [[instruments.registers]] tables (name, quantity, address, type, unit)",
        )
    owner: dict[tuple[int, int], int] = {}
    for number, point in enumerate(instrument.registers):
        path = here + ("registers", number, "address")
        try:
            parse_unit(point.unit)
        except TwinError:
            raise doc.error(
                here + ("registers", number, "unit"),
                f"register {point.name!r}: unit {point.unit!r} is not a unit pint understands",
                "write e.g. 'kPa', 'uL/min', 'degC'",
            ) from None
        if point.plausible is not None and point.plausible[0] >= point.plausible[1]:
            raise doc.error(
                here + ("registers", number, "plausible"),
                f"register {point.name!r}: plausible range {list(point.plausible)} is empty",
                "write [low, high] with low < high",
            )
        for register in range(point.address, point.address + register_count(point.type)):
            key = (point.function, register)
            if key in owner:
                first = instrument.registers[owner[key]]
                raise doc.error(
                    path,
                    f"register {point.name!r} ({point.type} at {point.address}) overlaps "
                    f"{first.name!r} (line {doc.line(here + ('registers', owner[key]))}) at register "
                    f"{register}",
                    "move one of them to free registers",
                )
            owner[key] = number


def _bus_key(instrument: InstrumentSpec) -> tuple[tuple, int | None]:
    c = instrument.connection
    if c.kind == "tcp":
        return ("tcp", c.host, c.port), c.unit_id
    line = ("line", c.port or c.usb_serial or c.usb_vid_pid)
    if c.kind == "rtu":
        return line, c.unit_id
    return line, c.address if instrument.driver != "teer" else None


def _bus_addresses(doc: TomlDocument, instruments: list[InstrumentSpec]) -> None:
    seen: dict[tuple, int] = {}
    for index, instrument in enumerate(instruments):
        bus, address = _bus_key(instrument)
        key = (bus, address)
        if key in seen:
            first = instruments[seen[key]]
            field = "unit_id" if instrument.driver in MODBUS_DRIVERS else "address"
            bus_text = ":".join(str(part) for part in bus[1:])
            raise doc.error(
                ("instruments", index, "connection", field),
                f"{instrument.name!r} has the same bus and address as {first.name!r} (line "
                f"{doc.line(('instruments', seen[key]))}): {bus_text} address {address}",
                f"give each device on {bus_text} its own {field}",
            )
        seen[key] = index


def _channel(
    doc: TomlDocument, index: int, channel: ChannelSpec, instruments: dict[str, InstrumentSpec], chips: set[str]
) -> None:
    here = ("channels", index)
    if channel.instrument not in instruments:
        raise doc.error(
            here + ("instrument",),
            f"channel {channel.name!r} refers to instrument {channel.instrument!r}, which is not in [[instruments]]",
            f"use one of: {', '.join(instruments) or '(no instruments)'}",
        )
    if channel.chip is not None and channel.chip not in chips:
        raise doc.error(
            here + ("chip",),
            f"channel {channel.name!r} refers to chip {channel.chip!r}, which is not in [[chips]]",
            f"use one of: {', '.join(sorted(chips)) or '(no chips)'}",
        )
    reported = measurements_of(instruments[channel.instrument])
    if channel.measurement not in reported:
        raise doc.error(
            here + ("measurement",),
            f"{channel.instrument!r} does not report {channel.measurement!r}",
            f"use one of: {', '.join(reported)}",
        )
    device_unit = reported[channel.measurement]
    try:
        factor = Q_(1.0, device_unit).to(parse_unit(channel.unit)).magnitude
        if not 0 < abs(factor) < float("inf"):
            raise ValueError(factor)
    except (TwinError, *PINT_PARSE_ERRORS):
        raise doc.error(
            here + ("unit",),
            f"channel {channel.name!r}: unit {channel.unit!r} cannot hold "
            f"{channel.measurement!r}, which the device reports in {device_unit}",
            f"use a unit convertible from {device_unit}",
        ) from None
    if channel.plausible is not None and channel.plausible[0] >= channel.plausible[1]:
        raise doc.error(
            here + ("plausible",),
            f"plausible range {list(channel.plausible)} is empty",
            "write [low, high] with low < high",
        )
