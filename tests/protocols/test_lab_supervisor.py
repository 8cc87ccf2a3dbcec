"""The supervisor's own duties on a real store (SQLite): a queue entry whose runner cannot start is
marked failed with the reason; a run whose runner keeps dying is parked with a critical alarm; the
endpoint servers (a stand-in module here: the real ones are other helpers' work) run as children,
are restarted when they die, and stop with the supervisor, which exits 0 on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from sqlalchemy import insert, select

from protocols.lab.queueing import enqueue
from store.repositories import queue
from store.schema import Alarm, ProtocolRun
from store.schema import Rig as RigRow
from store.states import QueueState
from tests.protocols.lab_helpers import dosing_protocol, wait_for
from tests.protocols.runner_helpers import REPO, RIG


def _serve(tmp, url: str, extra: list[str], env: dict) -> subprocess.Popen:  # noqa: ANN001
    log = open(tmp / "supervisor.log", "ab")
    child = subprocess.Popen(
        [sys.executable, "-m", "ui.cli.app", "lab", "serve", "--lab", str(tmp / "lab.toml"), "--db", url, *extra],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        env={**os.environ, **env},
    )
    log.close()
    return child


def test_failed_starts_crash_loops_and_endpoint_children(tmp_path, sqlite_url):
    from store.engine import make_engine
    from store.migrate import upgrade

    engine = make_engine(sqlite_url, create=True)
    upgrade(engine)
    (tmp_path / "liver4.toml").write_text(RIG.read_text())
    (tmp_path / "gone.json").write_text(json.dumps({}))  # a simulated rig that is not there
    (tmp_path / "lab.toml").write_text(
        '[supervisor]\nname = "pc1"\npoll_s = 0.1\nmax_quick_deaths = 2\nquick_death_s = 120.0\n\n'
        '[[rigs]]\nfile = "liver4.toml"\nendpoints = "gone.json"\n'
    )
    standins = tmp_path / "standins"
    standins.mkdir()
    env = {"CHIPTWIN_LAB_OPCUA_MODULE": "tests.protocols.lab_endpoint_standin", "LAB_STANDIN_DIR": str(standins)}
    supervisor = _serve(tmp_path, sqlite_url, ["--opcua", "opc.tcp://127.0.0.1:4999"], env)
    try:
        first = wait_for(lambda: list(standins.glob("*.json")), 120)[0]
        arguments = json.loads(first.read_text())
        assert arguments[:4] == ["--db", sqlite_url, "--endpoint", "opc.tcp://127.0.0.1:4999"]
        assert arguments[4:6] == ["--security", "sign-encrypt,sign"]  # the lab file's [opcua] defaults
        os.kill(int(first.stem), signal.SIGKILL)  # the endpoint server dies: restarted
        wait_for(lambda: len(list(standins.glob("*.json"))) == 2, 120)

        wait_for(lambda: queue.listing(engine) == [] and _rig_known(engine), 120)
        entry = enqueue(
            engine, protocol_text=dosing_protocol(1, 1.0), protocol_name="p.toml", rig_name="liver4", queued_by="sam"
        )
        failed = wait_for(lambda: queue.get(engine, entry).state is QueueState.FAILED and queue.get(engine, entry), 180)
        assert "before its run began" in failed.note and "liver4-entry" in failed.note

        with engine.begin() as c:  # a run left running by a runner that died: its resume keeps failing
            rig_id = c.execute(select(RigRow.id).where(RigRow.name == "liver4")).scalar()
            run_id = c.execute(
                insert(ProtocolRun).values(
                    rig_id=rig_id, protocol_text="x", protocol_sha256="0" * 64, state="running", checkpoint_json="{}"
                )
            ).inserted_primary_key[0]
        wait_for(lambda: _state(engine, run_id) == "parked", 240, 0.2)
        with engine.connect() as c:
            alarm = c.execute(select(Alarm).where(Alarm.run_id == run_id)).one()
        assert alarm.severity == "critical" and "died 2 times in a row" in alarm.message
        assert f"chiptwin resume {run_id}" in alarm.message
    finally:
        supervisor.send_signal(signal.SIGTERM)
        code = supervisor.wait(60)
        engine.dispose()
    assert code == 0, (tmp_path / "supervisor.log").read_text()[-2000:]
    for record in standins.glob("*.json"):  # the endpoint servers stopped with it
        wait_for(lambda: not _alive(int(record.stem)), 30)  # noqa: B023


def _rig_known(engine) -> bool:  # noqa: ANN001
    with engine.connect() as c:
        return bool(c.execute(select(RigRow.config_toml).where(RigRow.name == "liver4")).scalar())


def _state(engine, run_id: int) -> str | None:  # noqa: ANN001
    with engine.connect() as c:
        return c.execute(select(ProtocolRun.state).where(ProtocolRun.id == run_id)).scalar()


def _alive(pid: int) -> bool:
    from store.lease import pid_exists

    return pid_exists(pid)


_ = time
