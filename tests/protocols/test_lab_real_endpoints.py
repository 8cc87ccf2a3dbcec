"""`chiptwin lab serve --opcua … --sila …` serves the real endpoints (#13 items 3–4 through item 1):
asyncua's own `uals` lists the lab's rig over OPC UA and a generic `sila2` client (no ChipTwin code)
calls its Channels feature over SiLA 2, both talking to the supervisor's children; SIGTERM stops them all."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from store.lease import pid_exists
from tests.net import free_loopback_port
from tests.protocols.lab_helpers import wait_for
from tests.protocols.runner_helpers import REPO, RIG

BIN = Path(sys.executable).parent
SILA_CALL = """
import json, sys
from sila2.client import SilaClient
client = SilaClient("127.0.0.1", int(sys.argv[1]), insecure=True)
print(json.dumps([list(row) for row in client.Channels.ListChannels()[0]]))
"""


def _answers(args: list[str], timeout_s: float = 60.0) -> subprocess.CompletedProcess | None:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, cwd=REPO)
    except subprocess.TimeoutExpired:
        return None
    return done if done.returncode == 0 else None


def test_the_supervisor_serves_opc_ua_and_sila_to_clients_chiptwin_did_not_write(tmp_path, sqlite_url):
    from store.engine import make_engine
    from store.migrate import upgrade

    engine = make_engine(sqlite_url, create=True)
    upgrade(engine)
    engine.dispose()
    (tmp_path / "liver4.toml").write_text(RIG.read_text())
    (tmp_path / "lab.toml").write_text(
        '[supervisor]\nname = "pc1"\npoll_s = 0.2\n\n[opcua]\nsecurity = ["sign-encrypt", "none"]\n\n'
        '[[rigs]]\nfile = "liver4.toml"\n'
    )
    opcua, sila = f"opc.tcp://127.0.0.1:{free_loopback_port()}", free_loopback_port()
    log = open(tmp_path / "supervisor.log", "ab")
    supervisor = subprocess.Popen(
        [str(BIN / "chiptwin"), "lab", "serve", "--lab", str(tmp_path / "lab.toml"), "--db", sqlite_url]
        + ["--opcua", opcua, "--sila", f"127.0.0.1:{sila}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    log.close()
    try:
        listed = wait_for(
            lambda: _answers([str(BIN / "uals"), "-u", opcua, "-n", "ns=2;s=rig/liver4", "-l", "1"]), 240, 1.0
        )
        assert "RunState" in listed.stdout, listed.stdout  # the rig is a device with its run state
        assert (tmp_path / "opcua-pki" / "server-cert.der").is_file()  # the lab file's [opcua] reached the endpoint
        channels = wait_for(lambda: _answers([sys.executable, "-c", SILA_CALL, str(sila)]), 240, 1.0)
        # a real SiLA round trip; no runner has run on this rig yet, so it has no channels to list
        assert json.loads(channels.stdout) == []
        children = [
            int(p)
            for p in subprocess.run(["pgrep", "-P", str(supervisor.pid)], capture_output=True, text=True).stdout.split()
        ]
        assert len(children) >= 2  # the two endpoint servers
    finally:
        supervisor.send_signal(signal.SIGTERM)
        code = supervisor.wait(90)
    assert code == 0, (tmp_path / "supervisor.log").read_text()[-2000:]
    for pid in children:
        wait_for(lambda: not pid_exists(pid), 30)  # noqa: B023 — the endpoints stop with the supervisor
