"""The supervisor's child processes: runners (`chiptwin run` / `resume`) and endpoint servers.

A child it started is watched with ``waitpid`` (``Popen.poll``); a runner it *adopted* after a
restart (started by a previous supervisor, so not its child) is watched by its pid. Endpoint
servers die with the supervisor (``PR_SET_PDEATHSIG``): a restarted supervisor must be able to
bind their ports again. Runners do not: a runner outlives its supervisor and is adopted.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from protocols.lab.lab_file import LabRig
from store.lease import pid_exists

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec (Linux)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


@dataclass
class Child:
    """One process the supervisor watches."""

    role: str  # run / resume / adopted / opcua / sila
    pid: int
    popen: subprocess.Popen[bytes] | None = None
    rig_name: str = ""
    run_id: int | None = None
    entry_id: int | None = None
    started_mono_s: float = field(default_factory=time.monotonic)
    log_path: Path | None = None

    def exit_code(self) -> int | None:
        """None while it runs; its exit status (negative: the signal) once it is gone."""
        if self.popen is not None:
            return self.popen.poll()  # waitpid(WNOHANG): reaps it
        return None if pid_exists(self.pid) else -1  # not our child: its status is not ours to read

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``grace_s`` (a killed runner is resumable: the intent log)."""
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_s
        while self.exit_code() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.exit_code() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            if self.popen is not None:
                self.popen.wait(timeout=30)


def spawn(role: str, command: list[str], log_path: Path, *, die_with_parent: bool = False, **fields: object) -> Child:
    """Start ``command`` with its output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if die_with_parent else None,
            start_new_session=not die_with_parent,  # a Ctrl-C in the supervisor's terminal is the supervisor's
        )
    return Child(role, popen.pid, popen, log_path=log_path, **fields)  # type: ignore[arg-type]


def start_spare(log_path: Path) -> subprocess.Popen[bytes]:
    """A spare runner (ui.cli.spare_runner) importing ahead of need; ``use_spare`` gives it its command."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "ui.cli.spare_runner"],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # like any runner: it outlives the supervisor once it runs
        )


def use_spare(
    spare: subprocess.Popen[bytes], role: str, command: list[str], log_path: Path, **fields: object
) -> Child | None:
    """Hand ``command`` (a runner_command) to ``spare``: the runner Child, or None when the spare is gone."""
    if spare.poll() is not None or spare.stdin is None:
        return None
    log_path.parent.mkdir(parents=True, exist_ok=True)
    request = {"args": command[3:], "log": str(log_path)}  # after `python -m ui.cli.run`
    try:
        spare.stdin.write((json.dumps(request) + "\n").encode())
        spare.stdin.close()
    except (BrokenPipeError, ValueError):
        return None
    return Child(role, spare.pid, spare, log_path=log_path, **fields)  # type: ignore[arg-type]


def runner_command(lab_rig: LabRig, db: str | None, *args: str) -> list[str]:
    """`chiptwin run|resume …` for ``lab_rig`` as a child (``python -m ui.cli.run``: no other commands loaded)."""
    command = [sys.executable, "-m", "ui.cli.run", *args, "--rig", str(lab_rig.rig_path)]
    if db is not None:
        command += ["--db", db]
    if lab_rig.endpoints is not None:
        return command + ["--endpoints", str(lab_rig.endpoints)]
    return command + ["--clock-rate", repr(lab_rig.clock_rate)]


OPCUA_MODULE_ENV, SILA_MODULE_ENV = "CHIPTWIN_LAB_OPCUA_MODULE", "CHIPTWIN_LAB_SILA_MODULE"


def endpoint_command(kind: str, db_url: str, address: str, options: list[str] | None = None) -> list[str]:
    """The OPC UA or SiLA 2 server of this lab (the module can be replaced by tests: see docs/lab.md);
    ``options``: the lab file's settings for it (``Lab.opcua_arguments``)."""
    if kind == "opcua":
        module = os.environ.get(OPCUA_MODULE_ENV) or "ui.endpoints.opcua"
        return [sys.executable, "-m", module, "--db", db_url, "--endpoint", address, *(options or [])]
    module = os.environ.get(SILA_MODULE_ENV) or "ui.endpoints.sila"
    return [sys.executable, "-m", module, "--db", db_url, "--address", address, "--insecure"]
