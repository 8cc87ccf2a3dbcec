"""ChipTwin's alarms as OPC UA alarm conditions (AlarmConditionType events), acknowledgeable.

Each open alarm (no ``acknowledged_utc_s`` yet) is a condition: an object ``Alarms/alarm <id>``
(node id ``alarm/<id>``, type AlarmConditionType) whose node id is the events' ConditionId. Raising
emits ActiveState true / AckedState false / Retain true; acknowledging — from the panel or over
OPC UA — emits AckedState true / ActiveState false / Retain false, and the condition node goes
(a ChipTwin alarm has no return-to-normal of its own: acknowledging closes it, as on the panel).

Acknowledge is the standard method (AcknowledgeableConditionType.Acknowledge, ``i=9111``) called on
the ConditionId with the EventId and a comment. It goes through the panel's own
``ui.panel.lab.acknowledge_alarm``: the role needs ``control`` (technician, scientist, admin), the
comment is required, and the store records who and when (wall clock) with the ``alarm.acknowledge``
audit entry in one transaction.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from asyncua import Server, ua
from sqlalchemy import Engine

from ui.endpoints.opcua import snapshot
from ui.endpoints.opcua.access import CALLER
from ui.panel.errors import NotAllowed, PanelError
from ui.panel.lab import acknowledge_alarm

SEVERITY = {"info": 100, "warning": 500, "critical": 900}  # OPC UA severity 1..1000
ACKNOWLEDGE = ua.NodeId(ua.ObjectIds.AcknowledgeableConditionType_Acknowledge)
log = logging.getLogger(__name__)


def utc(t_utc_s: float) -> datetime:
    return datetime.fromtimestamp(t_utc_s, tz=timezone.utc)


def _text(value: Any) -> str:
    """A method argument (Variant of LocalizedText, String or ByteString) as text."""
    value = getattr(value, "Value", value)
    if isinstance(value, ua.LocalizedText):
        return value.Text or ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


@dataclass
class _Open:
    alarm: snapshot.AlarmView
    node_id: ua.NodeId
    sources: list[ua.NodeId]  # emitting nodes: the rig (if any), then the Server object
    event_ids: set[bytes] = field(default_factory=set)


class Conditions:
    """The open alarms as conditions, their events, and the Acknowledge method."""

    def __init__(self, server: Server, engine: Engine, ns: int) -> None:
        self.server, self.engine, self.ns = server, engine, ns
        self.open: dict[int, _Open] = {}
        self._template: Any = None
        self._folder: ua.NodeId | None = None

    async def start(self) -> None:
        """Before ``Server.start``: the Alarms folder, the event template and the Acknowledge callback."""
        folder = await self.server.nodes.objects.add_folder(
            ua.NodeId("Alarms", self.ns), ua.QualifiedName("Alarms", self.ns)
        )
        self._folder = folder.nodeid
        generator = await self.server.get_event_generator(ua.ObjectIds.AlarmConditionType, ua.ObjectIds.Server)
        self._template = generator.event  # an AlarmCondition event object with ConditionId ("NodeId")
        for name, kind in self._template.data_types.items():  # asyncua 2.1 types UtcTime fields by NodeId
            if kind == ua.NodeId(ua.ObjectIds.UtcTime):
                self._template.data_types[name] = ua.VariantType.DateTime
        self.server.link_method(self.server.get_node(ACKNOWLEDGE), self._acknowledge)

    def open_ids(self) -> list[int]:
        return list(self.open)

    # -- raising and closing ---------------------------------------------------------------
    async def raise_(self, alarm: snapshot.AlarmView, rig: ua.NodeId | None) -> None:
        """Show ``alarm`` as an active, unacknowledged condition and notify subscribers."""
        if alarm.id in self.open:
            return
        node_id = await self._add_node(alarm)
        sources = [s for s in (rig, ua.NodeId(ua.ObjectIds.Server)) if s is not None]
        shown = self.open[alarm.id] = _Open(alarm, node_id, sources)
        await self._emit(shown, utc(alarm.t_utc_s), active=True, acked=False, comment="", by="")

    async def close(self, alarm: snapshot.AlarmView) -> None:
        """``alarm`` was acknowledged (panel or OPC UA): emit AckedState true and drop the condition."""
        shown = self.open.pop(alarm.id, None)
        if shown is None:
            return
        when = utc(alarm.acknowledged_utc_s if alarm.acknowledged_utc_s is not None else alarm.t_utc_s)
        await self._emit(
            shown, when, active=False, acked=True, comment=alarm.ack_comment, by=alarm.acknowledged_by or ""
        )
        await self.server.delete_nodes([self.server.get_node(shown.node_id)])

    async def _add_node(self, alarm: snapshot.AlarmView) -> ua.NodeId:
        """A bare AlarmConditionType object (its state lives in the events; its methods are the type's)."""
        item = ua.AddNodesItem()
        item.RequestedNewNodeId = ua.NodeId(f"alarm/{alarm.id}", self.ns)
        item.BrowseName = ua.QualifiedName(f"alarm {alarm.id}", self.ns)
        item.ParentNodeId = self._folder
        item.ReferenceTypeId = ua.NodeId(ua.ObjectIds.Organizes)
        item.NodeClass = ua.NodeClass.Object
        item.TypeDefinition = ua.NodeId(ua.ObjectIds.AlarmConditionType)
        attributes = ua.ObjectAttributes()
        attributes.DisplayName = ua.LocalizedText(f"alarm {alarm.id}")
        attributes.Description = ua.LocalizedText(f"{alarm.severity}: {alarm.message}")
        item.NodeAttributes = attributes
        (result,) = await self.server.iserver.isession.add_nodes([item])
        result.StatusCode.check()
        return result.AddedNodeId

    async def _emit(self, shown: _Open, when: datetime, *, active: bool, acked: bool, comment: str, by: str) -> None:
        alarm, event_id = shown.alarm, uuid.uuid4().bytes
        shown.event_ids.add(event_id)
        now = datetime.now(timezone.utc)
        for source in shown.sources:  # the Server last: asyncua keeps the last one for ConditionRefresh
            event = copy.deepcopy(self._template)
            event.emitting_node = source
            event.SourceNode = shown.sources[0]
            event.SourceName = alarm.source
            event.NodeId = shown.node_id
            event.ConditionName = f"alarm {alarm.id}"
            event.ConditionClassId = ua.NodeId(ua.ObjectIds.BaseConditionClassType)
            event.EventId = event_id
            event.Time, event.ReceiveTime = when, now
            event.Message = ua.LocalizedText(f"{alarm.severity}: {alarm.message}")
            event.Severity = SEVERITY.get(alarm.severity, 500)
            event.Retain = not acked
            event.EnabledState = ua.LocalizedText("Enabled")
            event.ActiveState = ua.LocalizedText("Active" if active else "Inactive")
            event.AckedState = ua.LocalizedText("Acknowledged" if acked else "Unacknowledged")
            for name, value in (("EnabledState/Id", True), ("ActiveState/Id", active), ("AckedState/Id", acked)):
                setattr(event, name, value)
            if acked:
                setattr(event, "AckedState/TransitionTime", when)
            event.Comment, event.ClientUserId = ua.LocalizedText(comment), by
            await self.server.iserver.subscription_service.trigger_event(event)

    # -- the Acknowledge method ----------------------------------------------------------
    async def _acknowledge(self, condition: ua.NodeId, *args: Any) -> Any:
        """Acknowledge(EventId, Comment) on a ConditionId: the panel's acknowledgement, as the caller."""
        shown = next((o for o in self.open.values() if o.node_id == condition), None)
        if shown is None:
            return ua.StatusCode(ua.StatusCodes.BadConditionBranchAlreadyAcked)
        if len(args) != 2:
            return ua.StatusCode(ua.StatusCodes.BadArgumentsMissing)
        event_id = getattr(args[0], "Value", args[0])
        if event_id not in shown.event_ids:
            return ua.StatusCode(ua.StatusCodes.BadEventIdUnknown)
        user = CALLER.get()
        who = getattr(user, "signed_in", None)
        try:
            await asyncio.to_thread(acknowledge_alarm, self.engine, who, shown.alarm.id, _text(args[1]))
        except NotAllowed as refused:
            log.info("acknowledge of alarm %d refused for %s: %s", shown.alarm.id, getattr(user, "name", None), refused)
            return ua.StatusCode(ua.StatusCodes.BadUserAccessDenied)
        except PanelError as refused:  # no comment, or acknowledged in the panel meanwhile
            log.info("acknowledge of alarm %d refused: %s", shown.alarm.id, refused)
            done = await asyncio.to_thread(snapshot.acknowledged_among, self.engine, [shown.alarm.id])
            if done:
                await self.close(done[0])
                return ua.StatusCode(ua.StatusCodes.BadConditionBranchAlreadyAcked)
            return ua.StatusCode(ua.StatusCodes.BadInvalidArgument)
        done = await asyncio.to_thread(snapshot.acknowledged_among, self.engine, [shown.alarm.id])
        for alarm in done:
            await self.close(alarm)
        return []
