"""A channel's unit as OPC UA EUInformation (UNECE Rec. 20 codes, the namespace OPC UA Part 8 names)."""

from __future__ import annotations

import pint
from asyncua import ua

UNECE_NAMESPACE = "http://www.opcfoundation.org/UA/units/un/cefact"

# UNECE common codes of the units ChipTwin's channels use; the UnitId is the code's ASCII bytes
# packed into an Int32 (OPC UA Part 8, 5.6.3). Unknown units keep UnitId -1 and their symbol.
_UNECE_CODES = {
    "percent": "P1",
    "millibar": "MBR",
    "bar": "BAR",
    "pascal": "PAL",
    "kilopascal": "KPA",
    "ohm": "OHM",
    "degree_Celsius": "CEL",
    "kelvin": "KEL",
    "milliliter": "MLT",
    "microliter": "4G",
    "milliliter / minute": "41",
    "millimolar": "M33",
    "molar": "C38",
    "second": "SEC",
    "minute": "MIN",
    "hour": "HUR",
    "dimensionless": "C62",
}

_registry = pint.UnitRegistry()


def _unit_id(code: str) -> int:
    if not code:
        return -1
    value = 0
    for char in code:
        value = (value << 8) | ord(char)
    return value


def eu_information(unit: str) -> ua.EUInformation:
    """The EUInformation of ``unit`` (a pint-readable string); an unreadable unit keeps its text."""
    try:
        parsed = _registry.Unit(unit)
        name, symbol = str(parsed), f"{parsed:~P}" or unit
    except (pint.errors.PintError, ValueError, TypeError, AttributeError):
        name, symbol = unit, unit
    return ua.EUInformation(
        NamespaceUri=UNECE_NAMESPACE,
        UnitId=_unit_id(_UNECE_CODES.get(name, "")),
        DisplayName=ua.LocalizedText(symbol or unit),
        Description=ua.LocalizedText(name),
    )
