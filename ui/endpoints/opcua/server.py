"""The address space after LADS (OPC 30500) and the loop that keeps it equal to the store.

    Objects/Devices/<rig>                      a rig: LADSDeviceType, also in DI's DeviceSet (lads.py)
        RunId, RunState, CurrentStep           the rig's newest run
        Pause(), Resume(), Abort() -> RequestId   write the panel's run request (access.may_steer)
        DeviceState/CurrentState               LADS device state: Operate (states.py)
        FunctionalUnitSet/<chip>               a chip: LADS FunctionalUnitType (FunctionalUnits/ organizes it too)
            FunctionalUnitState/CurrentState   the run state as LADS's (states.py), and its RunningStateMachine
            FunctionSet/<channel>              LADS AnalogScalarSensorFunction; SensorValue = the channel (sensors.py)
            <channel>                          Double, EngineeringUnits (EUInformation), quality as StatusCode
        Channels/<channel>                     channels that belong to no chip
    Objects/Alarms/alarm <id>                  an open alarm as an AlarmConditionType condition (alarms.py)
    alarms: AlarmConditionType events emitted by the rig object and the Server object

Node ids are strings in the endpoint's namespace (``urn:chiptwin:opcua``), stable across restarts:
``rig/<rig>``, ``rig/<rig>/RunState``, ``rig/<rig>/channel/<channel>``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from asyncua import Node, Server, ua
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from store.ingest import Quality
from store.states import FINAL_RUN_STATES
from ui.endpoints.opcua import lads, sensors, snapshot, states
from ui.endpoints.opcua.access import (
    CALLER,
    Anonymous,
    ReadOnlyAnonymous,
    StoreUserManager,
    may_steer,
    record_callers,
)
from ui.endpoints.opcua.alarms import Conditions, utc
from ui.endpoints.opcua.security import Security
from ui.endpoints.opcua.security import apply as apply_security
from ui.endpoints.opcua.units import eu_information
from ui.panel.errors import NotAllowed, PanelError
from ui.panel.live import request_control

NAMESPACE_URI = "urn:chiptwin:opcua"
DEFAULT_POLL_PERIOD_S = 0.5
OPEN_ALARMS_SHOWN = 500  # open alarms older than the newest 500 at start are not conditions here
log = logging.getLogger(__name__)


def status_of(value: snapshot.ChannelValue) -> ua.StatusCode:
    """The reading's quality bits as an OPC UA status: device error bad, stale/range/substituted uncertain."""
    if value.t_utc_s is None:
        return ua.StatusCode(ua.StatusCodes.BadWaitingForInitialData)
    if value.quality & Quality.DEVICE_ERROR:
        return ua.StatusCode(ua.StatusCodes.BadDeviceFailure)
    if value.quality & Quality.STALE:
        return ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue)
    if value.quality & Quality.OUT_OF_RANGE:
        return ua.StatusCode(ua.StatusCodes.UncertainEngineeringUnitsExceeded)
    if value.quality & Quality.SUBSTITUTED:
        return ua.StatusCode(ua.StatusCodes.UncertainSubstituteValue)
    return ua.StatusCode(ua.StatusCodes.Good)


@dataclass
class _Rig:
    node: Node
    run_id: Node
    run_state: Node
    current_step: Node
    units: Node  # the FunctionalUnits folder (organizes the chips too)
    unit_set: Node  # LADS FunctionalUnitSet
    device_state: states.StateVariable  # LADS DeviceState
    chips: dict[int, Node] = field(default_factory=dict)
    chip_states: dict[int, states.UnitState] = field(default_factory=dict)  # their FunctionalUnitState
    function_sets: dict[int, Node] = field(default_factory=dict)  # their LADS FunctionSet
    shown: snapshot.RunView | None = None


@dataclass
class _Read:
    """One poll's reading of the store (made in a worker thread)."""

    mark: tuple[int, ...]  # snapshot.topology_mark
    rigs: list[snapshot.RigView] | None  # None: the topology has not changed since the last poll
    values: list[snapshot.ChannelValue]
    runs: dict[int, snapshot.RunView]
    alarms: list[snapshot.AlarmView]  # new since the last poll
    acknowledged: list[snapshot.AlarmView]  # of the open ones shown


def _read(engine: Engine, mark: tuple[int, ...], after_alarm_id: int, open_alarm_ids: list[int]) -> _Read:
    """The store as the endpoint shows it; rigs, chips and channels only when ``mark`` says they changed."""
    now_mark = snapshot.topology_mark(engine)
    return _Read(
        now_mark,
        snapshot.topology(engine) if now_mark != mark else None,
        snapshot.values(engine),
        snapshot.runs(engine),
        snapshot.alarms_after(engine, after_alarm_id),
        snapshot.acknowledged_among(engine, open_alarm_ids),
    )


class Endpoint:
    """An asyncua server over one store; ``serve`` until ``stop`` is set."""

    def __init__(
        self,
        engine: Engine,
        url: str,
        anonymous: Anonymous,
        poll_period_s: float = DEFAULT_POLL_PERIOD_S,
        security: Security = Security(),
    ) -> None:
        self.engine, self.url, self.anonymous, self.poll_period_s = engine, url, anonymous, poll_period_s
        self.security = security
        self.server = Server(user_manager=StoreUserManager(engine, anonymous))
        self.ns = 0
        self._rigs: dict[int, _Rig] = {}
        self._channels: dict[int, Node] = {}
        self._sensor_values: dict[int, Node] = {}  # a chip's channel's LADS SensorValue
        self._shown_t: dict[int, float | None] = {}
        self._last_alarm_id = 0
        self._mark: tuple[int, ...] = ()
        self.conditions = Conditions(self.server, engine, 0)
        self._store_ok = True

    # -- start ----------------------------------------------------------------------------
    async def start(self) -> None:
        record_callers()
        self.server.iserver.bind_condition_methods = True  # ConditionRefresh re-sends the open alarms
        await self.server.init()
        self.server.set_endpoint(self.url)
        self.server.set_server_name("ChipTwin lab")
        await apply_security(self.server, self.security, ReadOnlyAnonymous())
        tokens: list[type] = [ua.UserNameIdentityToken]
        if self.anonymous == Anonymous.READ:
            tokens.insert(0, ua.AnonymousIdentityToken)
        self.server.set_identity_tokens(tokens)
        self.ns = await self.server.register_namespace(NAMESPACE_URI)  # first: it stays ns=2
        self.lads = await lads.load(self.server)
        self._devices = await self.server.nodes.objects.add_folder(self._id("Devices"), self._name("Devices"))
        self.conditions.ns = self.ns
        await self.conditions.start()
        self._last_alarm_id = await asyncio.to_thread(snapshot.last_alarm_id, self.engine)
        await self.poll_once()
        opened = await asyncio.to_thread(snapshot.open_alarms, self.engine, OPEN_ALARMS_SHOWN)
        for alarm in opened:  # alarms still open at start are conditions, not replayed as news
            if alarm.id <= self._last_alarm_id:
                await self.conditions.raise_(alarm, self._rig_node(alarm.rig_id))
        await self.server.start()

    def _id(self, path: str) -> ua.NodeId:
        return ua.NodeId(path, self.ns)

    def _name(self, name: str) -> ua.QualifiedName:
        return ua.QualifiedName(name, self.ns)

    # -- the address space ---------------------------------------------------------------
    async def _add_rig(self, rig: snapshot.RigView) -> _Rig:
        base = f"rig/{rig.name}"
        node = await self._devices.add_object(
            self._id(base), self._name(rig.name), objecttype=self.lads.device_type, instantiate_optional=False
        )
        device_set = self.server.get_node(self.lads.device_set)
        await device_set.add_reference(node.nodeid, ua.ObjectIds.Organizes)  # where LADS clients look
        await node.set_event_notifier([ua.EventNotifier.SubscribeToEvents])
        await self.server.get_node(ua.ObjectIds.Server).add_reference(node.nodeid, ua.ObjectIds.HasNotifier)
        run_id = await node.add_variable(self._id(f"{base}/RunId"), self._name("RunId"), -1, ua.VariantType.Int64)
        state = await node.add_variable(self._id(f"{base}/RunState"), self._name("RunState"), "idle")
        step = await node.add_variable(self._id(f"{base}/CurrentStep"), self._name("CurrentStep"), "")
        for kind in ("Pause", "Resume", "Abort"):
            await node.add_method(
                self._id(f"{base}/{kind}"),
                self._name(kind),
                self._method(rig.id, kind.lower()),
                [],
                [ua.VariantType.Int64],
            )
        units = await node.add_folder(self._id(f"{base}/FunctionalUnits"), self._name("FunctionalUnits"))
        unit_set = await node.get_child([self.lads.functional_unit_set])
        device_state = await states.device_state(node, self.lads.namespace)
        return _Rig(node, run_id, state, step, units, unit_set, device_state)

    def _rig_node(self, rig_id: int | None) -> ua.NodeId | None:
        shown = self._rigs.get(rig_id) if rig_id is not None else None
        return shown.node.nodeid if shown else None

    async def _add_channel(self, rig: snapshot.RigView, shown: _Rig, channel: snapshot.ChannelView) -> None:
        parent = shown.node
        if channel.chip_id is not None:
            if channel.chip_id not in shown.chips:
                chip = rig.chips[channel.chip_id]
                unit = await shown.unit_set.add_object(
                    self._id(f"rig/{rig.name}/chip/{chip}"),
                    self._name(chip),
                    objecttype=self.lads.functional_unit_type,
                    instantiate_optional=False,
                )
                await shown.units.add_reference(unit.nodeid, ua.ObjectIds.Organizes)
                shown.chips[channel.chip_id] = unit
                shown.chip_states[channel.chip_id] = await states.unit_state(unit, self.lads.namespace)
                await shown.chip_states[channel.chip_id].show((shown.shown or snapshot.IDLE).state, self.lads.namespace)
                shown.function_sets[channel.chip_id] = await sensors.function_set(unit, self.lads)
            parent = shown.chips[channel.chip_id]
        base = f"rig/{rig.name}/channel/{channel.name}"
        node = await parent.add_variable(self._id(base), self._name(channel.name), 0.0, ua.VariantType.Double)
        eu = eu_information(channel.unit)
        await node.add_property(
            self._id(f"{base}/EngineeringUnits"),
            ua.QualifiedName("EngineeringUnits", 0),
            ua.Variant(eu, ua.VariantType.ExtensionObject),
            datatype=ua.NodeId(ua.ObjectIds.EUInformation),
        )
        if channel.chip_id is not None:
            self._sensor_values[channel.id] = await sensors.sensor_value(
                shown.function_sets[channel.chip_id],
                self._id(f"rig/{rig.name}/sensor/{channel.name}"),
                channel.name,
                eu,
                self.lads,
            )
        await node.add_property(self._id(f"{base}/Quantity"), self._name("Quantity"), channel.quantity)
        self._channels[channel.id] = node
        self._shown_t[channel.id] = -1.0  # nothing shown yet: the first poll writes it

    async def _ensure(self, rigs: list[snapshot.RigView]) -> None:
        """Add the rigs, chips and channels that appeared in the store since the last poll."""
        for rig in rigs:
            if rig.id not in self._rigs:
                self._rigs[rig.id] = await self._add_rig(rig)
            for channel in rig.channels:
                if channel.id not in self._channels:
                    await self._add_channel(rig, self._rigs[rig.id], channel)

    # -- the poll ------------------------------------------------------------------------
    async def poll_once(self) -> None:
        try:
            read = await asyncio.to_thread(
                _read, self.engine, self._mark, self._last_alarm_id, self.conditions.open_ids()
            )
        except SQLAlchemyError as error:
            if self._store_ok:
                log.warning("the store does not answer (%s); values keep their last state", error)
            self._store_ok = False
            return
        self._store_ok = True
        if read.rigs is not None:
            await self._ensure(read.rigs)
            self._mark = read.mark
        now = datetime.now(timezone.utc)
        for value in read.values:
            await self._show_value(value, now)
        for rig_id, shown in self._rigs.items():
            await self._show_run(shown, read.runs.get(rig_id, snapshot.IDLE))
        for alarm in read.alarms:
            await self.conditions.raise_(alarm, self._rig_node(alarm.rig_id))
            if alarm.acknowledged_utc_s is not None:  # acknowledged before this poll saw it
                await self.conditions.close(alarm)
            self._last_alarm_id = alarm.id
        for alarm in read.acknowledged:
            await self.conditions.close(alarm)

    async def _show_value(self, value: snapshot.ChannelValue, now: datetime) -> None:
        if value.channel_id not in self._channels or self._shown_t.get(value.channel_id) == value.t_utc_s:
            return  # unchanged: writing it again would notify subscribers of nothing new
        self._shown_t[value.channel_id] = value.t_utc_s
        data = ua.DataValue(
            Value=ua.Variant(value.value if value.value is not None else 0.0, ua.VariantType.Double),
            StatusCode=status_of(value),
            SourceTimestamp=utc(value.t_utc_s) if value.t_utc_s is not None else None,
            ServerTimestamp=now,
        )
        await self.server.write_attribute_value(self._channels[value.channel_id].nodeid, data)
        if value.channel_id in self._sensor_values:
            await self.server.write_attribute_value(self._sensor_values[value.channel_id].nodeid, data)

    async def _show_run(self, rig: _Rig, run: snapshot.RunView) -> None:
        if rig.shown == run:
            return
        rig.shown = run
        await rig.run_id.write_value(ua.Variant(-1 if run.run_id is None else run.run_id, ua.VariantType.Int64))
        await rig.run_state.write_value(run.state)
        await rig.current_step.write_value(run.current_step)
        for unit_state in rig.chip_states.values():
            await unit_state.show(run.state, self.lads.namespace)

    # -- methods -------------------------------------------------------------------------
    def _method(self, rig_id: int, kind: str):
        async def call(parent: ua.NodeId, *args: Any) -> Any:
            return await self._steer(rig_id, kind)

        return call

    async def _steer(self, rig_id: int, kind: str) -> Any:
        user = CALLER.get()
        try:
            who = await asyncio.to_thread(may_steer, self.engine, user)
        except NotAllowed as refused:
            log.info("%s refused for %s: %s", kind, getattr(user, "name", None) or "anonymous", refused)
            return ua.StatusCode(ua.StatusCodes.BadUserAccessDenied)
        run = await asyncio.to_thread(snapshot.run_of, self.engine, rig_id)
        if run.run_id is None or run.state in FINAL_RUN_STATES:
            return ua.StatusCode(ua.StatusCodes.BadInvalidState)
        try:
            request_id = await asyncio.to_thread(request_control, self.engine, who, run.run_id, kind)
        except PanelError as refused:
            log.info("%s refused: %s", kind, refused)
            return ua.StatusCode(ua.StatusCodes.BadUserAccessDenied)
        return [ua.Variant(int(request_id), ua.VariantType.Int64)]

    # -- run -----------------------------------------------------------------------------
    async def serve(self, stop: asyncio.Event) -> None:
        """Poll every ``poll_period_s`` (from the start of one poll to the next) until ``stop``."""
        try:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    await self.poll_once()
                except Exception:  # one bad poll must not take the endpoint down; the next one retries
                    log.exception("a poll of the store failed")
                left_s = self.poll_period_s - (time.monotonic() - started)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=max(left_s, 0.0))
                except asyncio.TimeoutError:
                    pass
        finally:
            await self.server.stop()
