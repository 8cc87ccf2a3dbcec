"""The command line as a newcomer meets it: every command of DESIGN.md listed, honest stubs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DESIGN_COMMANDS = [
    "demo",
    "run",
    "resume",
    "panel",
    "fit",
    "design",
    "simulate",
    "predict",
    "sim-rig",
    "db",
    "audit",
    "devices",
    "protocol",
]


def chiptwin(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    executable = shutil.which("chiptwin", path=str(Path(sys.executable).parent))
    command = [executable] if executable else [sys.executable, "-m", "ui.cli.app"]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def test_help_lists_the_commands_of_the_design():
    result = chiptwin("--help")
    assert result.returncode == 0
    for command in DESIGN_COMMANDS:
        assert f" {command} " in result.stdout, command


@pytest.mark.parametrize(
    "command",
    [
        ["demo"],
        ["run"],
        ["fit"],
        ["design"],
        ["dose"],
        ["sim-rig"],
        ["devices", "check"],
        ["protocol", "check"],
        ["panel"],
    ],
)
def test_every_command_explains_itself(command):
    result = chiptwin(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout and "--help" in result.stdout


def test_the_store_defaults_to_a_file_in_the_working_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CHIPTWIN_DB"}
    result = subprocess.run(
        [sys.executable, "-m", "ui.cli.app", "db", "upgrade"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "chiptwin.db").exists()


def test_chiptwin_db_variable_selects_the_store(tmp_path):
    target = tmp_path / "from-env.db"
    result = chiptwin("db", "upgrade", env={"CHIPTWIN_DB": str(target)})
    assert result.returncode == 0 and target.exists()
    assert "from-env.db" in chiptwin("db", "current", env={"CHIPTWIN_DB": str(target)}).stdout


@pytest.mark.parametrize(
    "url, expected",
    [
        ("postgresql+psycopg://lab@127.0.0.1:1/x", "cannot reach the database"),
        ("oracle://scott@tiger/db", "unsupported database 'oracle'"),
    ],
)
def test_store_errors_are_one_line_without_traceback(url, expected):
    result = chiptwin("db", "upgrade", "--db", url)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and expected in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
