"""LADS (OPC 30500) in the endpoint: the companion nodesets imported, and the types rigs and chips get.

The nodesets (DI, IA, Machinery, AMB, LADS; nodesets/README.md) are imported with asyncua's
``import_xml``. Two kinds of node are left out because asyncua 2.1's importer cannot place them
(they have no parent) and a server does not need them: nodes marked ``DesignToolOnly`` (DI 1.05's
placeholders for design tools) and the ``Default JSON`` encoding objects (this endpoint speaks the
binary encoding only).
"""

from __future__ import annotations

import gzip
import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from asyncua import Server, ua

FOLDER = Path(__file__).with_name("nodesets")
NODESETS = ("Opc.Ua.Di", "Opc.Ua.IA", "Opc.Ua.Machinery", "Opc.Ua.AMB", "Opc.Ua.LADS")  # in dependency order
DI_URI = "http://opcfoundation.org/UA/DI/"
LADS_URI = "http://opcfoundation.org/UA/LADS/"
_UANODESET = "http://opcfoundation.org/UA/2011/03/UANodeSet.xsd"
_LADS_DEVICE_TYPE, _FUNCTIONAL_UNIT_TYPE, _DEVICE_SET = 1002, 1003, 5001  # ids in their models
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Lads:
    """What the address space uses of the imported models."""

    device_type: ua.NodeId  # LADS LADSDeviceType
    functional_unit_type: ua.NodeId  # LADS FunctionalUnitType
    device_set: ua.NodeId  # DI DeviceSet, where LADS clients look for devices
    functional_unit_set: ua.QualifiedName  # the device's FunctionalUnitSet component
    namespace: int  # the LADS model's namespace index on this server
    di_namespace: int  # DI's


def server_xml(name: str) -> str:
    """A vendored nodeset as XML text, without the nodes a server cannot place (module docstring)."""
    ET.register_namespace("", _UANODESET)
    root = ET.fromstring(gzip.decompress((FOLDER / f"{name}.NodeSet2.xml.gz").read_bytes()))
    dropped = [n for n in root if n.get("DesignToolOnly") == "true" or n.get("SymbolicName") == "DefaultJson"]
    ids = {n.get("NodeId") for n in dropped}
    for node in dropped:
        root.remove(node)
    for references in root.iter(f"{{{_UANODESET}}}References"):
        for reference in list(references):
            if (reference.text or "").strip() in ids:
                references.remove(reference)
    return ET.tostring(root, encoding="unicode")


async def load(server: Server) -> Lads:
    """Import the nodesets into ``server`` (after ``init``); the LADS types and DI's DeviceSet."""
    importer_log = logging.getLogger("asyncua.common.xmlimporter")
    level = importer_log.level
    importer_log.setLevel(logging.ERROR)  # it warns of every encoding reference it could not link
    try:
        for name in NODESETS:
            await server.import_xml(xmlstring=server_xml(name))
    finally:
        importer_log.setLevel(level)
    lads, di = await server.get_namespace_index(LADS_URI), await server.get_namespace_index(DI_URI)
    return Lads(
        ua.NodeId(_LADS_DEVICE_TYPE, lads),
        ua.NodeId(_FUNCTIONAL_UNIT_TYPE, lads),
        ua.NodeId(_DEVICE_SET, di),
        ua.QualifiedName("FunctionalUnitSet", lads),
        lads,
        di,
    )
