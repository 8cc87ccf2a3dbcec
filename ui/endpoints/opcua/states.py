"""ChipTwin's run state as LADS (OPC 30500) state machines: which state, and writing CurrentState.

A chip's ``FunctionalUnitState`` (``FunctionalUnitStateMachineType``) gets the top state and, while
it is Running, the sub-state of its ``RunningStateMachine``; the rig's ``DeviceState``
(``LADSDeviceStateMachineType``) is Operate. docs/opcua.md gives the table and the reason for each
choice. CurrentState is a LocalizedText, its ``Id`` property the NodeId of the state object in the
type (OPC 10000-16 FiniteStateVariableType); a sub-state machine that is not active has CurrentState
with status BadStateNotActive (OPC 10000-16 4.4.3).
"""

from __future__ import annotations

from dataclasses import dataclass

from asyncua import Node, ua

from store.states import RunState
from ui.endpoints.opcua import nodes

# State objects in the LADS model (ns=LADS), read from the vendored Opc.Ua.LADS.NodeSet2.xml.
FUNCTIONAL_STATES = {"Stopped": 5085, "Running": 5099, "Stopping": 5100, "Aborting": 5159, "Aborted": 5160}
RUNNING_STATES = {"Idle": 5120, "Execute": 5168, "Held": 5124, "Suspended": 5121, "Complete": 5128}
DEVICE_STATES = {"Initialization": 5177, "Operate": 5178, "Sleep": 5259, "Shutdown": 5180}
RUNNING_STATE_MACHINE_TYPE = 1036

IDLE = "idle"  # snapshot.IDLE's state: the rig has had no run yet

# run state -> (FunctionalUnitState, its RunningStateMachine's sub-state or None: not active)
FUNCTIONAL_UNIT_STATE: dict[str, tuple[str, str | None]] = {
    IDLE: ("Stopped", None),
    RunState.CREATED: ("Stopped", None),
    RunState.RUNNING: ("Running", "Execute"),
    RunState.PAUSED: ("Running", "Held"),
    RunState.PARKED: ("Running", "Suspended"),
    RunState.DONE: ("Stopped", None),
    RunState.ABORTED: ("Aborted", None),
    RunState.FAILED: ("Aborted", None),
}
DEVICE_STATE = "Operate"  # for every run state (docs/opcua.md)


def functional_unit_state(run_state: str) -> tuple[str, str | None]:
    """The LADS state (and Running sub-state) of a chip whose rig's newest run is in ``run_state``."""
    return FUNCTIONAL_UNIT_STATE.get(run_state, ("Stopped", None))


@dataclass(frozen=True)
class StateVariable:
    """A state machine's CurrentState and its Id property."""

    current: Node
    id: Node

    async def show(self, name: str | None, state_id: ua.NodeId | None) -> None:
        """Write the state ``name`` (its NodeId ``state_id``); None: the machine is not active."""
        status = ua.StatusCode(ua.StatusCodes.Good if name else ua.StatusCodes.BadStateNotActive)
        text = ua.DataValue(ua.Variant(ua.LocalizedText(name or "", "en"), ua.VariantType.LocalizedText), status)
        ident = ua.DataValue(ua.Variant(state_id or ua.NodeId(), ua.VariantType.NodeId), status)
        await self.current.write_value(text)
        await self.id.write_value(ident)


async def state_variable(machine: Node) -> StateVariable:
    """``machine``'s CurrentState and its Id; the Id added where asyncua's instantiation left it out."""
    current = await child(machine, "CurrentState")
    if current is None:
        await nodes.add(machine.session, nodes.state_items(machine.nodeid))
        return _state_of(machine, machine.nodeid)
    if await child(current, "Id") is None:
        await nodes.add(machine.session, nodes.state_items(machine.nodeid)[1:])
    return _state_of(machine, machine.nodeid)


async def child(node: Node, name: str) -> Node | None:
    try:
        return await node.get_child([ua.QualifiedName(name, 0)])
    except ua.UaStatusCodeError:
        return None


@dataclass(frozen=True)
class UnitState:
    """A chip's FunctionalUnitState and its RunningStateMachine."""

    state: StateVariable
    running: StateVariable

    async def show(self, run_state: str, lads_ns: int) -> None:
        top, sub = functional_unit_state(run_state)
        await self.state.show(top, ua.NodeId(FUNCTIONAL_STATES[top], lads_ns))
        await self.running.show(sub, ua.NodeId(RUNNING_STATES[sub], lads_ns) if sub else None)


async def unit_state(unit: Node, lads_ns: int) -> UnitState:
    """A chip's FunctionalUnitState completed where asyncua's instantiation left parts out: its
    CurrentState and Id, and the optional RunningStateMachine with its own (one AddNodes call)."""
    machine = (await unit.get_child([ua.QualifiedName("FunctionalUnitState", lads_ns)])).nodeid
    running = nodes.child_id(machine, "RunningStateMachine")
    name = ua.QualifiedName("RunningStateMachine", lads_ns)
    await nodes.add(
        unit.session,
        [
            *nodes.state_items(machine),
            nodes.object_item(machine, running, name, ua.NodeId(RUNNING_STATE_MACHINE_TYPE, lads_ns)),
            *nodes.state_items(running),
        ],
    )
    return UnitState(_state_of(unit, machine), _state_of(unit, running))


def _state_of(any_node: Node, machine: ua.NodeId) -> StateVariable:
    current = nodes.child_id(machine, "CurrentState")
    return StateVariable(Node(any_node.session, current), Node(any_node.session, nodes.child_id(current, "Id")))


async def device_state(device: Node, lads_ns: int) -> StateVariable:
    """A rig's DeviceState, shown as Operate (docs/opcua.md)."""
    variable = await state_variable(await device.get_child([ua.QualifiedName("DeviceState", lads_ns)]))
    await variable.show(DEVICE_STATE, ua.NodeId(DEVICE_STATES[DEVICE_STATE], lads_ns))
    return variable
