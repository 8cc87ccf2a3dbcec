"""Bad input to the lab: a lab file naming a rig twice (or a typo), a queue entry for an unknown rig or
an invalid protocol, a technician queueing — each refused with the reason (one line, exit 2 from the
CLI), nothing queued. The lab file's good shape is parsed too."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from protocols.lab.lab_file import LabFileError, load_lab
from store import make_engine
from store.migrate import upgrade
from store.repositories import queue
from store.schema import Rig
from tests.protocols.lab_helpers import dosing_protocol
from tests.protocols.runner_helpers import REPO, RIG
from ui.panel.auth import add_user

PASSWORD = "correct horse battery"


def _lab(tmp_path: Path, body: str) -> Path:
    for name in ("liverA", "liverB"):
        (tmp_path / f"{name}.toml").write_text(RIG.read_text().replace('name = "liver4"', f'name = "{name}"', 1))
    (tmp_path / "lab.toml").write_text('[supervisor]\nname = "pc1"\n' + body)
    return tmp_path / "lab.toml"


def test_a_good_lab_file_names_its_supervisor_rigs_and_endpoints(tmp_path):
    lab = load_lab(
        _lab(
            tmp_path,
            '\n[endpoints]\nopcua = "opc.tcp://127.0.0.1:4840"\n\n[[rigs]]\nfile = "liverA.toml"\n'
            'endpoints = "a.json"\n\n[[rigs]]\nfile = "liverB.toml"\nclock_rate = 60.0\n',
        )
    )
    assert lab.supervisor.name == "pc1" and [r.name for r in lab.rigs] == ["liverA", "liverB"]
    assert lab.endpoints.opcua == "opc.tcp://127.0.0.1:4840" and lab.endpoints.sila is None
    assert lab.rigs[0].endpoints == tmp_path / "a.json" and lab.rigs[1].clock_rate == 60.0


def test_the_opcua_table_becomes_the_endpoints_options_with_paths_from_the_lab_files_folder(tmp_path):
    default = load_lab(_lab(tmp_path, '\n[[rigs]]\nfile = "liverA.toml"\n'))
    assert default.opcua_arguments()[:2] == ["--security", "sign-encrypt,sign"]  # None only if configured
    body = (
        '\n[opcua]\nsecurity = ["sign-encrypt", "none"]\ncertificate = "pki/lab.der"\nprivate_key = "pki/lab.pem"\n'
        'trust_clients = "all"\nanonymous = "off"\n\n[[rigs]]\nfile = "liverA.toml"\n'
    )
    assert load_lab(_lab(tmp_path, body)).opcua_arguments() == [
        "--security",
        "sign-encrypt,none",
        "--certificate-dir",
        str(tmp_path / "opcua-pki"),
        "--certificate",
        str(tmp_path / "pki/lab.der"),
        "--private-key",
        str(tmp_path / "pki/lab.pem"),
        "--trust-clients",
        "all",
        "--anonymous",
        "off",
    ]


def test_a_lab_file_naming_a_rig_twice_is_refused_with_its_line(tmp_path):
    body = '\n[[rigs]]\nfile = "liverA.toml"\n\n[[rigs]]\nfile = "liverB.toml"\n\n[[rigs]]\nfile = "./liverA.toml"\n'
    with pytest.raises(
        LabFileError, match=r"lab.toml line 11: rig 'liverA' is named twice .*; fix: list each rig once"
    ):
        load_lab(_lab(tmp_path, body))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('\n[[rigs]]\nfile = "liverA.toml"\nendpoint = "x"\n', r"lab.toml line 6: unknown key rigs.0.endpoint"),
        ("\n[[rigs]]\nfile = 3\n", r"lab.toml line 5: rigs.0.file: Input should be a valid string"),
        ('\n[[rigs]]\nfile = "nope.toml"\n', r"lab.toml line 5: rig file nope.toml: .*nope.toml"),
        ("", r"lab.toml line 1: rigs is missing"),
        (
            '\n[opcua]\nsecurity = ["plain"]\n\n[[rigs]]\nfile = "liverA.toml"\n',
            r"lab.toml line 5: opcua.security.0: Input should be .sign-encrypt.",
        ),
        (
            '\n[opcua]\ncertificate = "lab.der"\n\n[[rigs]]\nfile = "liverA.toml"\n',
            r"lab.toml line 4: opcua.certificate and opcua.private_key go together",
        ),
    ],
)
def test_a_lab_file_mistake_is_one_line_with_file_line_and_fix(tmp_path, body, message):
    with pytest.raises(LabFileError, match=message) as caught:
        load_lab(_lab(tmp_path, body))
    assert "\n" not in str(caught.value) and "fix:" in str(caught.value)


@pytest.fixture
def store(tmp_path, store_url):
    engine = make_engine(store_url, create=True)
    upgrade(engine)
    with engine.begin() as c:  # what `chiptwin lab serve` does when it registers its rig
        c.execute(Rig.__table__.insert().values(name="liver4", config_toml=RIG.read_text(), created_utc_s=time.time()))
    add_user(engine, "sam", "scientist", PASSWORD)
    add_user(engine, "tia", "technician", PASSWORD)
    (tmp_path / "p.toml").write_text(dosing_protocol(1, 1.0))
    (tmp_path / "bad.toml").write_text(dosing_protocol(1, 1.0).replace('"chip2"', '"chip9"'))
    yield engine, store_url, tmp_path
    engine.dispose()


def _queue_cli(url: str, *args: str, password: str = PASSWORD) -> subprocess.CompletedProcess:
    env = {**os.environ, "CHIPTWIN_PASSWORD": password}
    command = [sys.executable, "-m", "ui.cli.app", "queue", *args, "--db", url]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=120)


def _one_line_refusal(done: subprocess.CompletedProcess, *needles: str) -> None:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_queue_commands_refuse_bad_input_and_queue_nothing(store):
    engine, url, tmp = store
    _one_line_refusal(
        _queue_cli(url, "add", str(tmp / "p.toml"), "--rig", "gut9", "--user", "sam"),
        "rig 'gut9' is not known to this lab; fix: use one of: liver4",
    )
    _one_line_refusal(_queue_cli(url, "add", str(tmp / "bad.toml"), "--rig", "liver4", "--user", "sam"), "bad.toml")
    _one_line_refusal(
        _queue_cli(url, "add", str(tmp / "p.toml"), "--rig", "liver4", "--user", "tia"),
        "'tia' is a technician; only a scientist may change a rig's queue",
    )
    _one_line_refusal(
        _queue_cli(url, "add", str(tmp / "p.toml"), "--rig", "liver4", "--user", "sam", password="wrong"),
        "not an active user with that password",
    )
    _one_line_refusal(
        _queue_cli(url, "add", str(tmp / "p.toml"), "--rig", "liver4", "--user", "sam", "--not-before", "soon"),
        "--not-before 'soon' is not a date and time; fix: ISO 8601",
    )
    assert queue.listing(engine) == []


def test_a_scientist_queues_lists_and_cancels(store):
    engine, url, tmp = store
    added = _queue_cli(
        url, "add", str(tmp / "p.toml"), "--rig", "liver4", "--user", "sam", "--not-before", "2030-01-02T03:04Z"
    )
    assert added.returncode == 0, added.stderr
    assert "queue entry 1: p.toml on rig liver4, not before 2030-01-02 03:04:00 UTC" in added.stdout
    listed = _queue_cli(url, "list", "--rig", "liver4", "--json")
    import json

    rows = json.loads(listed.stdout)
    assert [(r["id"], r["state"], r["queued_by"]) for r in rows] == [(1, "queued", "sam")]
    assert rows[0]["not_before_utc_s"] == 1893553440.0
    assert _queue_cli(url, "cancel", "1", "--user", "sam").returncode == 0
    _one_line_refusal(_queue_cli(url, "cancel", "1", "--user", "sam"), "queue entry 1 is cancelled")
    assert queue.get(engine, 1).state.value == "cancelled"
