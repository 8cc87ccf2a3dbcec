"""The demo's human in the loop (#12 item 1, in part): the last round's proposal waits for a person's
signed approval while a policy approves the others; `chiptwin demo --no-panel` runs unattended."""

from __future__ import annotations

import json

import pytest
from rich.console import Console
from typer.testing import CliRunner

from protocols.demo import setup
from protocols.language.api import Approve, expand, parse_protocol
from ui.cli import run as run_cli
from ui.cli.app import app as cli


def _approvals(text: str) -> list[Approve]:
    return [s for s in expand(parse_protocol(text).steps) if isinstance(s, Approve)]


def test_the_demo_protocols_last_approval_needs_a_person_with_time_to_sign():
    text = setup.PROTOCOL.read_text(encoding="utf-8")
    approvals = _approvals(text)
    assert [a.policy for a in approvals] == ["auto_within_bounds", "auto_within_bounds", "manual"]
    assert approvals[-1].timeout.to("h").magnitude >= 100  # at 3600×, minutes of wall time for a person
    unattended = _approvals(setup.unattended(text))
    assert [a.policy for a in unattended] == ["auto_within_bounds"] * 3
    assert {(a.max_dose, a.max_sampled_volume_per_chip) for a in unattended} == {
        (approvals[0].max_dose, approvals[0].max_sampled_volume_per_chip)
    }  # the policy approves inside the same bounds as the other rounds


@pytest.fixture
def demo_calls(monkeypatch) -> list[dict]:
    """`chiptwin demo` with the run and the store replaced: what it asks of ``run_demo``."""
    calls: list[dict] = []
    monkeypatch.setattr(setup, "prepare_store", lambda db: None)
    monkeypatch.setattr(setup, "run_demo", lambda db, rate, progress, **kw: calls.append(kw) or {"state": "done"})
    monkeypatch.setattr(run_cli, "_open_panel", lambda db, port, console: None)  # no panel process in a test
    return calls


@pytest.mark.parametrize(
    "args, person",
    [
        (["--no-panel"], False),  # nobody to ask: unattended
        (["--no-panel", "--person-approves-last"], True),
        ([], True),  # with the panel: a person signs the last one
        (["--policy-approves-all"], False),
    ],
)
def test_who_approves_the_last_round(demo_calls, args, person):
    result = CliRunner().invoke(cli, ["demo", "--json", *args])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"state": "done"}
    assert [c["person_approves"] for c in demo_calls] == [person]


def test_the_demo_says_which_proposal_waits_and_how_to_approve_it():
    console = Console(record=True, width=200)
    hear = run_cli._approval_hint(console, "chiptwin-demo.db", no_panel=False)
    hear("warning", "pump3", "motor stalled")
    hear("info", "approval", "waiting for approval: proposal 3 (20 uM, 80 uL sampled per chip) needs a person (manual)")
    said = console.export_text()
    assert "motor stalled" not in said
    assert "proposal 3 (20 uM" in said and "Proposals page" in said
    assert 'chiptwin proposals approve 3 --reason "..." --user demo-scientist --db chiptwin-demo.db' in said


def _children(pid: int) -> list[int]:
    path = f"/proc/{pid}/task/{pid}/children"
    try:
        with open(path, encoding="ascii") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has ended
    except OSError:
        return False


def test_the_demos_sigterm_to_its_panel_also_stops_streamlit(tmp_path):
    """`chiptwin demo` ends its panel with SIGTERM (``ui.cli.run._stop``): the streamlit server the
    panel started must go with it, not linger serving the port."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    from store import make_engine
    from store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'lab.db'}"
    upgrade(make_engine(url, create=True))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    panel = subprocess.Popen(
        [sys.executable, "-m", "ui.cli.app", "panel", "--db", url, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not (streamlit := _children(panel.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert streamlit, "the panel started no streamlit server"
        panel.send_signal(signal.SIGTERM)  # to the panel command only, as the demo does
        panel.wait(timeout=15)
        deadline = time.monotonic() + 15
        while any(_alive(p) for p in streamlit) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in streamlit), "streamlit outlived the panel command"
    finally:  # whatever is left of the panel's session (its own group): nothing outlives the test
        try:
            os.killpg(panel.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        panel.wait(timeout=10)
