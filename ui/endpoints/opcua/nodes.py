"""AddNodes items for typed instances built by hand, in one call, where asyncua's ``instantiate`` costs
10-16 ms of CPU per object (it browses the whole type tree each time): chips and channels come by the
hundred in a lab's store, and the endpoint's start-up would grow by seconds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from asyncua import ua


def child_id(parent: ua.NodeId, name: str) -> ua.NodeId:
    """A child's node id as asyncua's instantiation makes them: ``<parent's string id>.<name>``."""
    return ua.NodeId(f"{parent.Identifier}.{name}", parent.NamespaceIndex)


def object_item(parent: ua.NodeId, node_id: ua.NodeId, name: ua.QualifiedName, type_id: ua.NodeId) -> ua.AddNodesItem:
    """An object of ``type_id`` (none of its children) as a component of ``parent``."""
    return ua.AddNodesItem(
        ParentNodeId=parent,
        ReferenceTypeId=ua.NodeId(ua.ObjectIds.HasComponent),
        RequestedNewNodeId=node_id,
        BrowseName=name,
        NodeClass=ua.NodeClass.Object,
        NodeAttributes=ua.ObjectAttributes(DisplayName=ua.LocalizedText(name.Name), EventNotifier=0),
        TypeDefinition=type_id,
    )


def variable_item(
    parent: ua.NodeId,
    node_id: ua.NodeId,
    name: ua.QualifiedName,
    value: ua.Variant,
    data_type: int,
    type_id: int,
) -> ua.AddNodesItem:
    """A read-only scalar variable of ``type_id``: a property of ``parent`` if that is PropertyType, else a component."""
    attributes = ua.VariableAttributes(
        DisplayName=ua.LocalizedText(name.Name),
        Value=value,
        DataType=ua.NodeId(data_type),
        ValueRank=ua.ValueRank.Scalar,
        AccessLevel=ua.AccessLevel.CurrentRead.mask,
        UserAccessLevel=ua.AccessLevel.CurrentRead.mask,
    )
    reference = ua.ObjectIds.HasProperty if type_id == ua.ObjectIds.PropertyType else ua.ObjectIds.HasComponent
    return ua.AddNodesItem(
        ParentNodeId=parent,
        ReferenceTypeId=ua.NodeId(reference),
        RequestedNewNodeId=node_id,
        BrowseName=name,
        NodeClass=ua.NodeClass.Variable,
        NodeAttributes=attributes,
        TypeDefinition=ua.NodeId(type_id),
    )


def state_items(machine: ua.NodeId) -> list[ua.AddNodesItem]:
    """A state machine's CurrentState (FiniteStateVariableType, LocalizedText) and its Id (NodeId)."""
    current = child_id(machine, "CurrentState")
    return [
        variable_item(
            machine,
            current,
            ua.QualifiedName("CurrentState", 0),
            ua.Variant(ua.LocalizedText(""), ua.VariantType.LocalizedText),
            ua.ObjectIds.LocalizedText,
            ua.ObjectIds.FiniteStateVariableType,
        ),
        variable_item(
            current,
            child_id(current, "Id"),
            ua.QualifiedName("Id", 0),
            ua.Variant(ua.NodeId(), ua.VariantType.NodeId),
            ua.ObjectIds.NodeId,
            ua.ObjectIds.PropertyType,
        ),
    ]


async def add(
    session: Any, items: list[ua.AddNodesItem], organizes: Sequence[tuple[ua.NodeId, ua.NodeId]] = ()
) -> None:
    """Add ``items`` in one call, then the Organizes references (source, target) in another."""
    for result in await session.add_nodes(items):
        result.StatusCode.check()
    if organizes:
        references = [
            ua.AddReferencesItem(
                SourceNodeId=source,
                ReferenceTypeId=ua.NodeId(ua.ObjectIds.Organizes),
                IsForward=True,
                TargetNodeId=target,
                TargetNodeClass=ua.NodeClass.Variable,
            )
            for source, target in organizes
        ]
        for status in await session.add_references(references):
            status.check()
