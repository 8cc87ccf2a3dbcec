"""A chip's channels as LADS (OPC 30500) sensor functions: ``AnalogScalarSensorFunctionType`` objects in
the functional unit's ``FunctionSet``, each with its ``SensorValue`` (typed AnalogUnitRangeType as in
the LADS nodeset, with EngineeringUnits; EURange is not given, ChipTwin's channels have none).

The channel's own variable (``s=rig/<rig>/channel/<channel>``) stays; the SensorValue gets the same
DataValue at each poll. ``RawValue`` (mandatory) is there, unwritten: ChipTwin stores the calibrated
value only. The nodes are built by hand in one AddNodes call (nodes.py), with the mandatory parts:
SensorValue and RawValue with EngineeringUnits, and DI's ``Operational`` group organizing them.
"""

from __future__ import annotations

from asyncua import Node, ua

from ui.endpoints.opcua import nodes
from ui.endpoints.opcua.lads import Lads

FUNCTION_SET_TYPE, ANALOG_SCALAR_SENSOR_FUNCTION_TYPE = 1026, 1016  # ids in the LADS model
FUNCTIONAL_GROUP_TYPE = 1005  # in DI


async def function_set(unit: Node, lads: Lads) -> Node:
    """The functional unit's FunctionSet (optional in FunctionalUnitType), made here."""
    node_id = nodes.child_id(unit.nodeid, "FunctionSet")
    name = ua.QualifiedName("FunctionSet", lads.namespace)
    await nodes.add(
        unit.session, [nodes.object_item(unit.nodeid, node_id, name, ua.NodeId(FUNCTION_SET_TYPE, lads.namespace))]
    )
    return Node(unit.session, node_id)


async def sensor_value(functions: Node, node_id: ua.NodeId, name: str, eu: ua.EUInformation, lads: Lads) -> Node:
    """An AnalogScalarSensorFunction ``name`` (``node_id``) in ``functions``; its SensorValue, carrying ``eu``."""
    ns = lads.namespace
    operational = nodes.child_id(node_id, "Operational")
    items = [
        nodes.object_item(
            functions.nodeid,
            node_id,
            ua.QualifiedName(name, node_id.NamespaceIndex),
            ua.NodeId(ANALOG_SCALAR_SENSOR_FUNCTION_TYPE, ns),
        ),
        nodes.object_item(
            node_id,
            operational,
            ua.QualifiedName("Operational", ns),
            ua.NodeId(FUNCTIONAL_GROUP_TYPE, lads.di_namespace),
        ),
    ]
    values = [nodes.child_id(node_id, "SensorValue"), nodes.child_id(node_id, "RawValue")]
    for value in values:
        items += [
            nodes.variable_item(
                node_id,
                value,
                ua.QualifiedName(str(value.Identifier).rsplit(".", 1)[1], ns),
                ua.Variant(0.0, ua.VariantType.Double),
                ua.ObjectIds.Double,
                ua.ObjectIds.AnalogUnitRangeType,  # as the LADS nodeset types SensorValue and RawValue
            ),
            nodes.variable_item(
                value,
                nodes.child_id(value, "EngineeringUnits"),
                ua.QualifiedName("EngineeringUnits", 0),
                ua.Variant(eu, ua.VariantType.ExtensionObject),
                ua.ObjectIds.EUInformation,
                ua.ObjectIds.PropertyType,
            ),
        ]
    await nodes.add(functions.session, items, [(operational, value) for value in values])
    return Node(functions.session, values[0])
