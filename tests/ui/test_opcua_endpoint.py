"""The OPC UA endpoint as another system meets it: the endpoint in its own process over a real
SQLite store, clients in separate processes (an asyncua client script, asyncua's `uals` and
`uaread`), on a free loopback port. One server per module keeps the file short."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography.x509.oid import ExtendedKeyUsageOID
from sqlalchemy import select

from store import make_engine
from store.engine import session
from store.ingest import Quality, ReadingIn, ingest_readings
from store.migrate import upgrade
from store.schema import Alarm, AuditEntry, Channel, Chip, PanelRequest, ProtocolRun, Rig, Step
from tests.net import free_loopback_port
from ui.panel.auth import add_user, sign_in
from ui.panel.lab import acknowledge_alarm

T0 = time.time() - 600.0
PASSWORDS = {"sam": "scientist-pw-1", "tina": "technician-pw-1"}
ROLES = {"sam": "scientist", "tina": "technician"}
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WAIT_S = 60.0  # generous: the machine is shared

CLIENT = r"""
import asyncio, json, sys
from asyncua import Client, ua

url, user, password, action = sys.argv[1:5]
NS = "urn:chiptwin:opcua"

class Seen:
    def __init__(self):
        self.values, self.events = [], []
    def datachange_notification(self, node, value, data):
        self.values.append((value, data.monitored_item.Value.SourceTimestamp.timestamp()))
    def event_notification(self, event):
        self.events.append((str(event.Message.Text), int(event.Severity)))

ACK = ua.NodeId(ua.ObjectIds.AcknowledgeableConditionType_Acknowledge)

def fields(event):
    got = event.get_event_props_as_fields_dict()
    return {
        "message": str(got["Message"].Value.Text), "severity": int(got["Severity"].Value),
        "active": got["ActiveState/Id"].Value, "acked": got["AckedState/Id"].Value,
        "retain": got["Retain"].Value, "condition": got["NodeId"].Value.to_string(),
        "comment": got["Comment"].Value.Text, "user": got["ClientUserId"].Value,
        "event_id": got["EventId"].Value,
    }

async def ack(client, condition, event_id, comment):
    try:
        await client.get_node(condition).call_method(ACK, ua.Variant(event_id, ua.VariantType.ByteString),
                                                     ua.LocalizedText(comment))
        return "Good"
    except ua.UaStatusCodeError as error:
        return type(error).__name__

async def alarm(client, url, ns, rig):
    seen = Seen()
    seen.event_notification = lambda event: seen.events.append(fields(event))
    subscription = await client.create_subscription(100, seen)
    await subscription.subscribe_events(rig, ua.ObjectIds.AlarmConditionType)
    print("subscribed", flush=True)
    sys.stdin.readline()  # the test raises an alarm, then writes a line
    for _ in range(300):
        if seen.events:
            break
        await asyncio.sleep(0.1)
    raised = seen.events[0]
    condition = ua.NodeId.from_string(raised["condition"])
    anonymous = Client(url, timeout=30)
    async with anonymous:
        refused = {"anonymous": await ack(anonymous, condition, raised["event_id"], "not me")}
    refused["no comment"] = await ack(client, condition, raised["event_id"], "")
    refused["unknown event"] = await ack(client, condition, b"no such event", "flushed")
    done = await ack(client, condition, raised["event_id"], "flushed the oxygen line")
    for _ in range(300):
        if len(seen.events) >= 2:
            break
        await asyncio.sleep(0.1)
    again = await ack(client, condition, raised["event_id"], "twice")
    for event in seen.events:
        event.pop("event_id")
    return {"events": seen.events, "refused": refused, "ack": done, "again": again}

async def refresh(client):
    seen = Seen()
    seen.event_notification = lambda event: seen.events.append(fields(event))
    subscription = await client.create_subscription(100, seen)
    await subscription.subscribe_events(client.nodes.server, ua.ObjectIds.AlarmConditionType)
    await client.get_node(ua.ObjectIds.ConditionType).call_method(
        ua.NodeId(ua.ObjectIds.ConditionType_ConditionRefresh),
        ua.Variant(subscription.subscription_id, ua.VariantType.UInt32))
    for _ in range(300):
        if seen.events:
            break
        await asyncio.sleep(0.1)
    print("subscribed", flush=True)
    sys.stdin.readline()  # the test acknowledges the alarm in the panel's way, then writes a line
    for _ in range(300):
        if any(e["acked"] for e in seen.events):
            break
        await asyncio.sleep(0.1)
    for event in seen.events:
        event.pop("event_id")
    return {"events": seen.events}

class States:  # the latest value of each subscribed node, by node id
    def __init__(self):
        self.latest = {}
    def datachange_notification(self, node, value, data):
        self.latest[node.nodeid.to_string()] = data.monitored_item.Value

async def states(client, ns):
    # On each line of stdin (the state the test just stored, as JSON [top, sub]) wait until the chip's
    # LADS state machines show it; answer the state texts, their Ids' browse names, the sub-state's status.
    base = "rig/bench-1/chip/liver-1.FunctionalUnitState"
    ids = [f"{base}.CurrentState", f"{base}.CurrentState.Id",
           f"{base}.RunningStateMachine.CurrentState", f"{base}.RunningStateMachine.CurrentState.Id"]
    nodes = [client.get_node(ua.NodeId(i, ns)) for i in ids]
    seen = States()
    subscription = await client.create_subscription(50, seen)
    await subscription.subscribe_data_change(nodes)
    device = client.get_node(ua.NodeId("rig/bench-1.DeviceState.CurrentState", ns))
    device_id = await (await device.get_child(["0:Id"])).read_value()
    out = {"device": [(await device.read_value()).Text, (await client.get_node(device_id).read_browse_name()).Name],
           "states": []}
    async def shown():
        values = [seen.latest.get(n.nodeid.to_string()) for n in nodes]
        if None in values:
            return None
        top, top_id, sub, sub_id = values
        async def name(v):
            return (await client.get_node(v.Value.Value).read_browse_name()).Name if v.StatusCode.is_good() else None
        return [top.Value.Value.Text, await name(top_id), sub.Value.Value.Text if sub.StatusCode.is_good() else None,
                await name(sub_id), sub.StatusCode.name]
    print("subscribed", flush=True)
    for line in sys.stdin:
        want = json.loads(line)
        got = None
        for _ in range(600):  # 60 s: the endpoint polls every 0.5 s on a busy machine
            got = await shown()
            if got and got[0] == want[0] and got[2] == want[1]:
                break
            await asyncio.sleep(0.1)
        out["states"].append(got)
        print("seen", flush=True)
    return out

async def main():
    client = Client(url, timeout=30)
    if user != "-":
        client.set_user(user)
        client.set_password(password)
    out = {}
    try:
        await client.connect()
    except Exception as error:
        print(json.dumps({"connect_error": type(error).__name__}), flush=True)
        return
    try:
        ns = await client.get_namespace_index(NS)
        rig = client.get_node(ua.NodeId("rig/bench-1", ns))
        if action == "browse":
            devices = await client.nodes.objects.get_child([f"{ns}:Devices"])
            out["rigs"] = [(await n.read_browse_name()).Name for n in await devices.get_children()]
            units = await rig.get_child([f"{ns}:FunctionalUnits"])
            out["chips"] = sorted([(await n.read_browse_name()).Name for n in await units.get_children()])
            chip = await units.get_child([f"{ns}:liver-1"])
            names = [await n.read_browse_name() for n in await chip.get_children()]
            out["channels"] = sorted(n.Name for n in names if n.NamespaceIndex == ns)
            uris = await client.get_namespace_array()
            async def type_of(node):
                type_node = client.get_node(await node.read_type_definition())
                return [uris[type_node.nodeid.NamespaceIndex], (await type_node.read_browse_name()).Name]
            out["rig_type"], out["chip_type"] = await type_of(rig), await type_of(chip)
            lads = uris.index("http://opcfoundation.org/UA/LADS/")
            di = uris.index("http://opcfoundation.org/UA/DI/")
            device_set = await client.nodes.objects.get_child([f"{di}:DeviceSet"])
            out["device_set"] = [(await n.read_browse_name()).Name for n in await device_set.get_children()]
            unit_set = await rig.get_child([f"{lads}:FunctionalUnitSet"])
            in_set = [await n.read_browse_name() for n in await unit_set.get_children()]
            out["unit_set"] = sorted(n.Name for n in in_set if n.NamespaceIndex == ns)
            oxygen = client.get_node(ua.NodeId("rig/bench-1/channel/liver-1/oxygen", ns))
            value = await oxygen.read_data_value()
            eu = await (await oxygen.get_child(["0:EngineeringUnits"])).read_value()
            out["oxygen"] = [value.Value.Value, value.StatusCode.name, value.SourceTimestamp.timestamp()]
            out["unit"] = [eu.DisplayName.Text, eu.UnitId, eu.NamespaceUri]
            teer = await client.get_node(ua.NodeId("rig/bench-1/channel/liver-1/teer", ns)).read_data_value(
                raise_on_bad_status=False)
            out["teer_status"] = teer.StatusCode.name
            out["run_state"] = await client.get_node(ua.NodeId("rig/bench-1/RunState", ns)).read_value()
            out["current_step"] = await client.get_node(ua.NodeId("rig/bench-1/CurrentStep", ns)).read_value()
        elif action == "subscribe":
            seen = Seen()
            subscription = await client.create_subscription(100, seen)
            oxygen = client.get_node(ua.NodeId("rig/bench-1/channel/liver-1/oxygen", ns))
            await subscription.subscribe_data_change(oxygen)
            await subscription.subscribe_events(rig)
            for _ in range(300):  # the first notification: the value already there
                if seen.values:
                    break
                await asyncio.sleep(0.1)
            print("subscribed", flush=True)
            sys.stdin.readline()  # the test writes a reading and an alarm, then a line
            for _ in range(300):
                if len(seen.values) >= 2 and seen.events:
                    break
                await asyncio.sleep(0.1)
            out["values"], out["events"] = seen.values, seen.events
        elif action == "alarm":  # see an alarm condition, try to acknowledge it anonymously, then as `user`
            out = await alarm(client, url, ns, rig)
        elif action == "states":  # the LADS state machines follow the run state the test stores
            out = await states(client, ns)
        elif action == "refresh":  # the open alarms by ConditionRefresh, then their acknowledgement
            out = await refresh(client)
        else:  # call: the methods named in `action`, e.g. "Pause,Abort"
            out["calls"] = []
            for kind in action.split(","):
                try:
                    result = await rig.call_method(ua.QualifiedName(kind, ns))
                    out["calls"].append([kind, "Good", result])
                except ua.UaStatusCodeError as error:
                    out["calls"].append([kind, type(error).__name__, None])
    finally:
        await client.disconnect()
    print(json.dumps(out), flush=True)

asyncio.run(main())
"""


@dataclass
class Lab:
    url: str
    endpoint: str
    channel_ids: dict[str, int]
    rig_id: int
    run_id: int
    client: Path
    pki: Path  # the endpoint's certificate folder


def _fill(url: str) -> tuple[dict[str, int], int, int]:
    engine = make_engine(url, create=True)
    upgrade(engine)
    with session(engine) as s:
        rig = Rig(name="bench-1", created_utc_s=T0)
        s.add(rig)
        s.flush()
        chips = [Chip(rig_id=rig.id, name=f"liver-{i}", organ="liver") for i in (1, 2)]
        s.add_all(chips)
        s.flush()
        channels = [
            Channel(rig_id=rig.id, chip_id=chip.id, name=f"{chip.name}/{q}", quantity=q, unit=u, poll_period_s=0.5)
            for chip in chips
            for q, u in (("oxygen", "percent"), ("teer", "ohm*cm^2"))
        ]
        run = ProtocolRun(
            rig_id=rig.id, protocol_text="dose", protocol_sha256="0" * 64, state="running", started_utc_s=T0
        )
        s.add_all([*channels, run])
        s.flush()
        s.add(Step(run_id=run.id, index=2, kind="dose", state="running", started_utc_s=T0))
        s.commit()
        ids, rig_id, run_id = {c.name: c.id for c in channels}, rig.id, run.id
    ingest_readings(
        engine,
        [
            ReadingIn(ids["liver-1/oxygen"], T0 + 1.0, 18.5),
            ReadingIn(ids["liver-1/teer"], T0 + 1.0, 950.0, int(Quality.DEVICE_ERROR)),
        ],
    )
    for name, password in PASSWORDS.items():
        add_user(engine, name, ROLES[name], password)
    engine.dispose()
    return ids, rig_id, run_id


def _start(url: str, endpoint: str, anonymous: str, pki: Path, security: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "ui.endpoints.opcua", "--db", url, "--endpoint", endpoint, "--anonymous", anonymous]
        + ["--certificate-dir", str(pki), "--security", security],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline() if process.stdout else ""  # blocks until ready or exit
    if "serving" not in line:
        process.kill()
        _, err = process.communicate(timeout=WAIT_S)
        pytest.fail(f"the endpoint did not start: {line!r} {err[-2000:]}")
    return process


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.communicate(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    folder = tmp_path_factory.mktemp("opcua")
    url = f"sqlite:///{folder / 'lab.db'}"
    ids, rig_id, run_id = _fill(url)
    endpoint = f"opc.tcp://127.0.0.1:{free_loopback_port()}"
    client = folder / "client.py"
    client.write_text(CLIENT)
    process = _start(url, endpoint, "read", folder / "pki", "sign-encrypt,sign,none")  # none: plain clients too
    yield Lab(url, endpoint, ids, rig_id, run_id, client, folder / "pki")
    _stop(process)


def _client(lab: Lab, user: str, password: str, action: str) -> dict:
    done = subprocess.run(
        [sys.executable, str(lab.client), lab.endpoint, user, password, action],
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _client_process(lab: Lab, user: str, password: str, action: str) -> subprocess.Popen:
    """The client in its own process, talking over its pipes (subscriptions: it prints, then waits for input)."""
    return subprocess.Popen(
        [sys.executable, str(lab.client), lab.endpoint, user, password, action],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_client_browses_devices_chips_and_channels_and_reads_a_value_with_its_unit(lab):
    seen = _client(lab, "sam", PASSWORDS["sam"], "browse")
    assert seen["rigs"] == ["bench-1"]
    assert seen["chips"] == ["liver-1", "liver-2"]
    assert seen["channels"] == ["liver-1/oxygen", "liver-1/teer"]
    lads = "http://opcfoundation.org/UA/LADS/"
    assert seen["rig_type"] == [lads, "LADSDeviceType"] and seen["chip_type"] == [lads, "FunctionalUnitType"]
    assert "bench-1" in seen["device_set"] and seen["unit_set"] == ["liver-1", "liver-2"]
    value, status, source_t = seen["oxygen"]
    assert (value, status) == (18.5, "Good")
    assert source_t == pytest.approx(T0 + 1.0, abs=1e-3)  # the reading's own time, not the poll's
    assert seen["unit"] == ["%", int.from_bytes(b"P1", "big"), "http://www.opcfoundation.org/UA/units/un/cefact"]
    assert seen["teer_status"] == "BadDeviceFailure"
    assert (seen["run_state"], seen["current_step"]) == ("running", "2 dose (running)")


def test_a_subscriber_sees_a_new_reading_and_an_alarm_event(lab):
    process = _client_process(lab, "sam", PASSWORDS["sam"], "subscribe")
    try:
        assert process.stdout and process.stdin
        assert process.stdout.readline().strip() == "subscribed"
        engine = make_engine(lab.url)
        t_new = time.time()
        ingest_readings(engine, [ReadingIn(lab.channel_ids["liver-1/oxygen"], t_new, 17.25)])
        with session(engine) as s:
            s.add(Alarm(rig_id=lab.rig_id, t_utc_s=t_new, severity="critical", source="o2", message="oxygen low"))
            s.commit()
        engine.dispose()
        out, err = process.communicate("go\n", timeout=WAIT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    seen = json.loads(out.strip().splitlines()[-1])
    assert [v for v, _ in seen["values"]] == [18.5, 17.25], err[-2000:]
    assert seen["values"][-1][1] == pytest.approx(t_new, abs=1e-3)
    assert seen["events"] == [["critical: oxygen low", 900]]


def _requests(lab: Lab) -> list[tuple[str, str]]:
    engine = make_engine(lab.url)
    with engine.connect() as c:
        rows = c.execute(select(PanelRequest.kind, PanelRequest.requested_by).order_by(PanelRequest.id)).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def _audit(lab: Lab, action: str) -> list[str]:
    engine = make_engine(lab.url)
    with engine.connect() as c:
        actors = c.execute(select(AuditEntry.actor).where(AuditEntry.action == action)).scalars().all()
    engine.dispose()
    return list(actors)


def test_the_technician_and_anonymous_may_read_but_not_steer_a_run(lab):
    before = _requests(lab)
    tina = _client(lab, "tina", PASSWORDS["tina"], "Pause,Abort")
    anonymous = _client(lab, "-", "-", "Pause")
    assert tina["calls"] == [["Pause", "BadUserAccessDenied", None], ["Abort", "BadUserAccessDenied", None]]
    assert anonymous["calls"][0][1] == "BadUserAccessDenied"
    assert _requests(lab) == before  # nothing reached the runner
    assert "rigs" in _client(lab, "-", "-", "browse")  # anonymous read is on in this endpoint


def test_a_scientist_pauses_and_aborts_through_the_panels_request_path(lab):
    before = len(_requests(lab))
    sam = _client(lab, "sam", PASSWORDS["sam"], "Pause,Resume,Abort")
    assert [c[:2] for c in sam["calls"]] == [["Pause", "Good"], ["Resume", "Good"], ["Abort", "Good"]]
    assert _requests(lab)[before:] == [("pause", "sam"), ("resume", "sam"), ("abort", "sam")]
    assert _audit(lab, "run.pause_request") == ["sam"]
    assert _audit(lab, "run.abort_request") == ["sam"]
    ids = [c[2] for c in sam["calls"]]
    assert ids == sorted(ids) and len(set(ids)) == 3  # each call returns its own request id


def test_a_wrong_password_is_refused_and_audited(lab):
    seen = _client(lab, "sam", "not-the-password", "browse")
    assert seen == {"connect_error": "BadUserAccessDenied"}
    assert "sam" in _audit(lab, "opcua.sign_in_refused")


def test_asyncua_command_line_tools_list_and_read_nodes(lab):
    listed = subprocess.run(
        [str(BIN / "uals"), "-u", lab.endpoint, "-n", "ns=2;s=rig/bench-1", "-l", "1"],
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    for name in ("RunState", "CurrentStep", "FunctionalUnits", "Pause", "Abort"):
        assert name in listed.stdout
    read = subprocess.run(
        [str(BIN / "uaread"), "-u", lab.endpoint, "-n", "ns=2;s=rig/bench-1/RunState"],
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )
    assert read.returncode == 0, read.stderr[-2000:]
    assert read.stdout.strip() in ("running", "paused", "aborted")  # the order of tests may have steered it


def test_with_anonymous_off_an_anonymous_client_is_refused(lab):
    endpoint = f"opc.tcp://127.0.0.1:{free_loopback_port()}"
    off = Lab(lab.url, endpoint, {}, 0, 0, lab.client, lab.pki)  # a second endpoint over the same store
    process = _start(lab.url, endpoint, "off", lab.pki, "none")
    try:
        assert _client(off, "-", "-", "browse") == {"connect_error": "BadIdentityTokenRejected"}
        assert _client(off, "sam", PASSWORDS["sam"], "browse")["rigs"] == ["bench-1"]
    finally:
        _stop(process)


@pytest.mark.parametrize(
    ("options", "names"),
    [
        (["--endpoint", "http://127.0.0.1:1"], "opc.tcp://HOST:PORT"),
        (["--endpoint", "opc.tcp://127.0.0.1:1", "--security", "plain"], "sign-encrypt, sign, none"),
        (["--endpoint", "opc.tcp://127.0.0.1:1", "--certificate", "/nowhere/lab.der"], "give both, or neither"),
    ],
)
def test_a_bad_option_is_one_line_and_exit_2(tmp_path, options, names):
    url = f"sqlite:///{tmp_path / 'lab.db'}"
    make_engine(url, create=True).dispose()
    done = subprocess.run(
        [sys.executable, "-m", "ui.endpoints.opcua", "--db", url, "--certificate-dir", str(tmp_path / "pki"), *options],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        env={**os.environ},
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and names in done.stderr


@pytest.mark.parametrize("user", ["tina", "sam"])
def test_an_alarm_condition_is_acknowledged_over_opcua_and_audited_like_the_panel(lab, user):
    process = _client_process(lab, user, PASSWORDS[user], "alarm")
    try:
        assert process.stdout and process.stdin
        assert process.stdout.readline().strip() == "subscribed"
        engine = make_engine(lab.url)
        with session(engine) as s:
            raised = Alarm(rig_id=lab.rig_id, t_utc_s=time.time(), severity="warning", source="o2", message=user)
            s.add(raised)
            s.commit()
            alarm_id = raised.id
        before = time.time()
        out, err = process.communicate("go\n", timeout=WAIT_S)
        after = time.time()
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    seen = json.loads(out.strip().splitlines()[-1])
    condition = f"ns=2;s=alarm/{alarm_id}"
    first, last = seen["events"][0], seen["events"][-1]
    assert first == {
        "message": f"warning: {user}",
        "severity": 500,
        "active": True,
        "acked": False,
        "retain": True,
        "condition": condition,
        "comment": "",
        "user": "",
    }, err[-2000:]
    assert seen["refused"] == {
        "anonymous": "BadUserAccessDenied",
        "no comment": "BadInvalidArgument",  # the panel's rule: say what was done
        "unknown event": "BadEventIdUnknown",
    }
    assert seen["ack"] == "Good"
    assert (last["acked"], last["active"], last["retain"]) == (True, False, False)
    assert (last["user"], last["comment"], last["condition"]) == (user, "flushed the oxygen line", condition)
    assert seen["again"] == "BadNodeIdInvalid"  # the closed condition is gone; the store keeps one acknowledgement
    engine = make_engine(lab.url)
    with engine.connect() as c:
        row = c.execute(
            select(Alarm.acknowledged_by, Alarm.acknowledged_utc_s, Alarm.ack_comment).where(Alarm.id == alarm_id)
        ).one()
        audit = c.execute(
            select(AuditEntry.actor, AuditEntry.t_utc_s).where(
                AuditEntry.action == "alarm.acknowledge", AuditEntry.entity_id == str(alarm_id)
            )
        ).all()
    engine.dispose()
    assert (row.acknowledged_by, row.ack_comment) == (user, "flushed the oxygen line")
    assert before <= row.acknowledged_utc_s <= after  # wall clock, when it was acknowledged
    assert [tuple(a) for a in audit] == [(user, row.acknowledged_utc_s)]


def _uals(lab: Lab, node: str) -> str:
    listed = subprocess.run(
        [str(BIN / "uals"), "-u", lab.endpoint, "-n", node, "-l", "1"], capture_output=True, text=True, timeout=WAIT_S
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    return listed.stdout


def test_an_open_alarm_shows_on_condition_refresh_and_its_panel_acknowledgement_is_an_event(lab):
    engine = make_engine(lab.url)
    with session(engine) as s:
        raised = Alarm(rig_id=lab.rig_id, t_utc_s=time.time(), severity="critical", source="pump", message="stall")
        s.add(raised)
        s.commit()
        alarm_id = raised.id
    condition = f"ns=2;s=alarm/{alarm_id}"
    deadline = time.monotonic() + WAIT_S
    while f"alarm {alarm_id}" not in _uals(lab, "ns=2;s=Alarms"):  # raised before the client subscribes
        assert time.monotonic() < deadline, "the endpoint never showed the alarm as a condition"
    process = _client_process(lab, "sam", PASSWORDS["sam"], "refresh")
    try:
        assert process.stdout and process.stdin
        assert process.stdout.readline().strip() == "subscribed"
        tina = sign_in(engine, "tina", PASSWORDS["tina"])
        acknowledge_alarm(engine, tina, alarm_id, "restarted the pump")  # as the panel's Overview does
        out, err = process.communicate("go\n", timeout=WAIT_S)
    finally:
        engine.dispose()
        if process.poll() is None:
            process.kill()
            process.communicate()
    events = [e for e in json.loads(out.strip().splitlines()[-1])["events"] if e["condition"] == condition]
    assert [(e["active"], e["acked"], e["retain"]) for e in events] == [(True, False, True), (False, True, False)]
    assert (events[-1]["user"], events[-1]["comment"]) == ("tina", "restarted the pump"), err[-2000:]


def _client_certificate(folder: Path) -> tuple[Path, Path]:
    """A client certificate as uaread presents it (asyncua's client application URI)."""
    cert, key = folder / "client-cert.der", folder / "client-key.pem"
    asyncio.run(
        setup_self_signed_certificate(
            key,
            cert,
            "urn:example.org:FreeOpcUa:opcua-asyncio",
            socket.gethostname(),
            [ExtendedKeyUsageOID.CLIENT_AUTH],
            {"commonName": "test client"},
        )
    )
    return cert, key


def _uaread(endpoint: str, node: str, *security: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "uaread"), "-u", endpoint, "-n", node, "--user", "sam", "--password", PASSWORDS["sam"], *security],
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )


def test_a_client_reads_a_channel_over_sign_and_encrypt_and_none_is_off_unless_configured(lab, tmp_path):
    pki = tmp_path / "pki"
    endpoint = f"opc.tcp://127.0.0.1:{free_loopback_port()}"
    cert, key = _client_certificate(tmp_path)
    process = _start(lab.url, endpoint, "read", pki, "sign-encrypt,sign")  # the default policies
    try:
        server_cert = pki / "server-cert.der"  # made on first start
        assert server_cert.is_file() and (pki / "server-key.pem").stat().st_mode & 0o077 == 0
        node = "ns=2;s=rig/bench-1/channel/liver-1/oxygen"
        encrypted = f"Basic256Sha256,SignAndEncrypt,{cert},{key},{server_cert}"
        untrusted = _uaread(endpoint, node, "--security", encrypted)
        assert untrusted.returncode != 0 and "BadCertificateUntrusted" in untrusted.stderr + untrusted.stdout
        (rejected,) = (pki / "rejected").iterdir()  # where a lab finds the certificate to trust
        rejected.rename(pki / "trusted" / rejected.name)
        read = _uaread(endpoint, node, "--security", encrypted)
        assert read.returncode == 0, read.stderr[-2000:]
        assert float(read.stdout.strip()) in (18.5, 17.25)  # the oxygen channel (a later test may have written)
        plain = _uaread(endpoint, node)
        assert plain.returncode != 0 and "No matching endpoints" in plain.stderr  # None only if configured
    finally:
        _stop(process)
    fingerprint = server_cert.read_bytes()
    process = _start(lab.url, endpoint, "read", pki, "sign-encrypt")
    _stop(process)
    assert server_cert.read_bytes() == fingerprint  # the certificate is kept across restarts


def test_the_endpoint_serves_a_lab_whose_store_is_postgresql(postgres_url, tmp_path):
    ids, rig_id, run_id = _fill(postgres_url)
    client = tmp_path / "client.py"
    client.write_text(CLIENT)
    endpoint = f"opc.tcp://127.0.0.1:{free_loopback_port()}"
    pg = Lab(postgres_url, endpoint, ids, rig_id, run_id, client, tmp_path / "pki")
    process = _start(postgres_url, endpoint, "read", pg.pki, "none")
    try:
        seen = _client(pg, "sam", PASSWORDS["sam"], "browse")
        steered = _client(pg, "sam", PASSWORDS["sam"], "Pause")
    finally:
        _stop(process)
    assert seen["rigs"] == ["bench-1"] and seen["channels"] == ["liver-1/oxygen", "liver-1/teer"]
    assert seen["oxygen"][:2] == [18.5, "Good"] and seen["teer_status"] == "BadDeviceFailure"
    assert steered["calls"][0][:2] == ["Pause", "Good"]
    assert _requests(pg) == [("pause", "sam")] and _audit(pg, "opcua.sign_in") == ["sam", "sam"]


def test_a_channel_added_while_the_endpoint_serves_appears_with_its_reading(lab):
    engine = make_engine(lab.url)
    with session(engine) as s:
        chip_id = s.execute(select(Chip.id).where(Chip.name == "liver-2")).scalar_one()
        channel = Channel(rig_id=lab.rig_id, chip_id=chip_id, name="liver-2/ph", quantity="ph", unit="dimensionless")
        s.add(channel)
        s.commit()
        channel_id = channel.id
    ingest_readings(engine, [ReadingIn(channel_id, time.time(), 7.25)])
    engine.dispose()
    deadline = time.monotonic() + WAIT_S
    while True:  # the endpoint polls every 0.5 s; the machine may be busy
        read = subprocess.run(
            [str(BIN / "uaread"), "-u", lab.endpoint, "-n", "ns=2;s=rig/bench-1/channel/liver-2/ph"],
            capture_output=True,
            text=True,
            timeout=WAIT_S,
        )
        if read.returncode == 0 or time.monotonic() > deadline:
            break
    assert read.returncode == 0, read.stderr[-2000:]
    assert float(read.stdout.strip()) == 7.25


def _set_run_state(lab: Lab, state: str) -> None:
    engine = make_engine(lab.url)
    with session(engine) as s:
        s.get(ProtocolRun, lab.run_id).state = state
        s.commit()
    engine.dispose()


def test_the_chips_lads_state_machine_follows_the_run_through_pause_park_done_and_abort(lab):
    process = _client_process(lab, "-", "-", "states")
    steps = [
        ("running", ["Running", "Execute"]),
        ("paused", ["Running", "Held"]),
        ("parked", ["Running", "Suspended"]),
        ("running", ["Running", "Execute"]),
        ("done", ["Stopped", None]),
        ("aborted", ["Aborted", None]),
        ("failed", ["Aborted", None]),
    ]
    try:
        assert process.stdout and process.stdin
        assert process.stdout.readline().strip() == "subscribed", process.stderr.read() if process.stderr else ""
        for state, want in steps:
            _set_run_state(lab, state)
            process.stdin.write(json.dumps(want) + "\n")
            process.stdin.flush()
            assert process.stdout.readline().strip() == "seen"
        out, err = process.communicate(timeout=WAIT_S)
    finally:
        _set_run_state(lab, "running")  # other tests steer this run
        if process.poll() is None:
            process.kill()
            process.communicate()
    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["device"] == ["Operate", "Operate"], err[-2000:]
    inactive = [None, None, "BadStateNotActive"]
    assert seen["states"] == [
        ["Running", "Running", "Execute", "Execute", "Good"],
        ["Running", "Running", "Held", "Held", "Good"],
        ["Running", "Running", "Suspended", "Suspended", "Good"],
        ["Running", "Running", "Execute", "Execute", "Good"],
        ["Stopped", "Stopped", *inactive],
        ["Aborted", "Aborted", *inactive],
        ["Aborted", "Aborted", *inactive],
    ], err[-2000:]


def test_a_channel_is_a_lads_sensor_function_whose_sensor_value_uaread_reads_with_its_unit(lab):
    sensor = "ns=2;s=rig/bench-1/sensor/liver-1/oxygen"
    channel, value = (
        subprocess.run(
            [str(BIN / "uaread"), "-u", lab.endpoint, "-n", node], capture_output=True, text=True, timeout=WAIT_S
        )
        for node in ("ns=2;s=rig/bench-1/channel/liver-1/oxygen", f"{sensor}.SensorValue")
    )
    assert channel.returncode == 0 and value.returncode == 0, value.stderr[-2000:]
    # the channel's newest reading (18.5 from the fill, 17.25 once the subscriber test has written one)
    assert float(value.stdout.strip()) == float(channel.stdout.strip()) in (18.5, 17.25)
    unit = subprocess.run(
        [str(BIN / "uaread"), "-u", lab.endpoint, "-n", f"{sensor}.SensorValue.EngineeringUnits"],
        capture_output=True,
        text=True,
        timeout=WAIT_S,
    )
    assert unit.returncode == 0, unit.stderr[-2000:]
    assert "'%'" in unit.stdout and "cefact" in unit.stdout  # EUInformation: symbol % and the UNECE namespace
    listed = _uals(lab, "ns=2;s=rig/bench-1/chip/liver-1.FunctionSet")
    assert "liver-1/oxygen" in listed and "liver-1/teer" in listed and "liver-2" not in listed
