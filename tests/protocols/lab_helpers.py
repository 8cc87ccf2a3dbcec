"""A simulated lab for the supervisor's tests and bench_lab: N renamed copies of liver4, each its own
simulated rig in this process (so its pumps' counters outlive every runner), a lab file naming them,
and `chiptwin lab serve` as a real child process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, func, select

from instruments.clock import AcceleratedClock
from instruments.rig.factory import endpoints_resolver, open_rig
from instruments.rig.model import Rig, load_rig
from instruments.sim.rig import SimulatedRig
from protocols.lab.queueing import known_rigs
from store.engine import make_engine
from store.lease import holder_of
from store.migrate import upgrade
from store.schema import Command, Reading
from tests.protocols.runner_helpers import REPO, RIG, wait_for

PUMPS = {"pump1": "chip1", "pump2": "chip2"}


def dosing_protocol(doses: int, wait_h: float, chips: tuple[str, ...] = ("chip1", "chip2")) -> str:
    chip_list = ", ".join(f'"{c}"' for c in chips)
    steps = "".join(
        f'\n[[steps]]\nkind = "dose"\nconcentration = "5 uM"\nchips = [{chip_list}]\n\n'
        f'[[steps]]\nkind = "wait"\nduration = "{wait_h} h"\n'
        for _ in range(doses)
    )
    header = (
        f'[protocol]\nname = "lab"\nchips = [{chip_list}]\n\n'
        '[drug]\nname = "acetaminophen"\nmolecular_weight = "151.16 g/mol"\n'
    )
    return header + steps


@dataclass
class SimLab:
    tmp: Path
    url: str
    engine: Engine
    rigs: dict[str, Rig]
    sims: dict[str, SimulatedRig]
    lab_file: Path
    supervisors: list[subprocess.Popen] = field(default_factory=list)
    before_ul: dict[str, dict[str, float]] = field(default_factory=dict)

    def serve(self, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> subprocess.Popen:
        """A new `chiptwin lab serve` (``env`` added to its environment), returned once it has registered its rigs."""
        log = open(self.tmp / f"supervisor{len(self.supervisors)}.log", "ab")
        child = subprocess.Popen(
            [sys.executable, "-m", "ui.cli.app", "lab", "serve", "--lab", str(self.lab_file), "--db", self.url, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        log.close()
        self.supervisors.append(child)
        wait_for(lambda: child.poll() is not None or self.registered_by(child.pid), 120.0)
        assert child.poll() is None, (self.tmp / f"supervisor{len(self.supervisors) - 1}.log").read_text()[-2000:]
        return child

    def registered_by(self, pid: int) -> bool:
        from store.ownership import supervisors

        return any(s.pid == pid for s in supervisors(self.engine)) and set(known_rigs(self.engine)) >= set(self.rigs)

    def runner_pid(self, rig: str) -> int | None:
        holder = holder_of(self.engine, rig)
        return None if holder is None or holder.gone_because(time.time()) else holder.holder_pid

    def readings(self) -> int:
        with self.engine.connect() as c:
            return int(c.execute(select(func.count()).select_from(Reading)).scalar() or 0)

    def pump_counters(self, rig: str) -> dict[str, float]:
        with open_rig(self.rigs[rig], endpoints_resolver(self.sims[rig].endpoints_document())) as devices:
            return {p: devices[p].dispensed().to("uL").magnitude for p in PUMPS}

    def confirmed(self) -> list[Command]:
        with self.engine.connect() as c:
            return list(c.execute(select(Command).where(Command.state == "confirmed")).all())


@contextmanager
def sim_lab(
    tmp: Path, url: str, n_rigs: int, rate: float, rig_file: Path = RIG, **supervisor: object
) -> Iterator[SimLab]:
    """N renamed copies of ``rig_file`` (liver1, liver2, …), each simulated at ``rate``, under one lab file."""
    engine = make_engine(url, create=True)
    upgrade(engine)
    text = rig_file.read_text(encoding="utf-8")
    own_name = load_rig(rig_file).name
    settings = "".join(f"{k} = {json.dumps(v)}\n" for k, v in supervisor.items())
    lab_text = f'[supervisor]\nname = "bench-pc-1"\npoll_s = 0.1\nheartbeat_s = 1.0\n{settings}'
    rigs: dict[str, Rig] = {}
    sims: dict[str, SimulatedRig] = {}
    lab = SimLab(tmp, url, engine, rigs, sims, tmp / "lab.toml")
    try:
        for i in range(n_rigs):
            name = f"liver{i + 1}"
            (tmp / f"{name}.toml").write_text(text.replace(f'name = "{own_name}"', f'name = "{name}"', 1))
            rigs[name] = load_rig(tmp / f"{name}.toml")
            sims[name] = SimulatedRig(rigs[name], None, AcceleratedClock.starting_now(rate)).start()
            (tmp / f"{name}.json").write_text(json.dumps(sims[name].endpoints_document()))
            lab_text += f'\n[[rigs]]\nfile = "{name}.toml"\nendpoints = "{name}.json"\n'
            lab.before_ul[name] = lab.pump_counters(name)
        lab.lab_file.write_text(lab_text)
        yield lab
    finally:
        for child in lab.supervisors:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(60)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait(30)
        for sim in sims.values():
            sim.stop()
        engine.dispose()
