"""Shared helpers of the runner tests: an in-process simulated rig and a runner in a thread."""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from instruments.clock import AcceleratedClock, SharedClock
from instruments.connection import RetryPolicy
from instruments.rig.factory import endpoints_resolver, open_rig
from instruments.rig.model import load_rig
from instruments.sim.rig import SimulatedRig
from instruments.sim.scenario import load_scenario
from protocols.run.bench import SimBench
from protocols.run.runner import Runner
from store.engine import make_engine
from store.migrate import upgrade

REPO = Path(__file__).resolve().parents[2]
RIG = REPO / "examples" / "rigs" / "liver4.toml"

HEADER = """
[protocol]
name = "{name}"
chips = ["chip1", "chip2"]

[drug]
name = "acetaminophen"
molecular_weight = "151.16 g/mol"

[safety]
interlocks = [{interlocks}]
"""


def protocol_text(steps: str, interlocks: str = "", name: str = "test") -> str:
    """A protocol on chip1 and chip2 (acetaminophen): ``steps`` (TOML, e.g. from ``step``) under
    ``interlocks`` (the TOML array's items)."""
    return HEADER.replace("{name}", name).replace("{interlocks}", interlocks) + steps


def step(kind: str, **fields: object) -> str:
    """One ``[[steps]]`` table of ``kind`` with ``fields`` (strings, lists of them: JSON's form is TOML's)."""
    return "\n[[steps]]\n" + "".join(
        f"{key} = {json.dumps(value)}\n" for key, value in {"kind": kind, **fields}.items()
    )


def dose_sample_calibrate(at: Sequence[str], parameters: Sequence[str]) -> str:
    """Dose 5 uM, sample 20 uL for LC-MS ``at`` each time, fit ``parameters`` of liver_chip."""
    return (
        step("dose", concentration="5 uM")
        + step("sample", volume="20 uL", assay="lcms", at=list(at))
        + step("calibrate", model="liver_chip", parameters=list(parameters))
    )


def propose_approve_execute(doses: Sequence[str], schedules: Sequence[Sequence[str]], **propose: str) -> str:
    """The loop's second half: propose from ``doses`` × ``schedules`` (20 uL samples; ``propose``: more
    of its fields), approve automatically within 50 uM and 200 uL per chip, execute."""
    return (
        step(
            "propose",
            doses=list(doses),
            schedules=[list(times) for times in schedules],
            sample_volume="20 uL",
            **propose,
        )
        + step("approve", policy="auto_within_bounds", max_dose="50 uM", max_sampled_volume_per_chip="200 uL")
        + step("execute")
    )


@contextmanager
def sim_runner(
    tmp_path: Path,
    protocol: str,
    scenario: str = "seed = 1\n",
    rate: float = 3600.0,
    *,
    stepped: bool = False,
    policy: RetryPolicy | None = None,
) -> Iterator[tuple[Runner, SimulatedRig]]:
    """``stepped``: the demo's clock (docs/clock.md), time runs only while a step waits and lands on its deadline;
    ``policy``: the drivers' retries and back-off (default ``RetryPolicy()``)."""
    engine = make_engine(str(tmp_path / "lab.db"), create=True)
    upgrade(engine)
    rig = load_rig(RIG)
    (tmp_path / "scenario.toml").write_text(scenario)
    names = {"chips": [c.name for c in rig.chips], "instruments": [i.name for i in rig.instruments]}
    clock = (
        SharedClock.create(tmp_path / "clock", rate, stepped=True) if stepped else AcceleratedClock.starting_now(rate)
    )
    sim = SimulatedRig(rig, load_scenario(tmp_path / "scenario.toml", **names), clock)
    sim.start()
    try:
        with open_rig(rig, endpoints_resolver(sim.endpoints_document()), policy) as devices:
            yield Runner.create(protocol, rig, engine, devices, sim.clock, bench=SimBench(sim)), sim
    finally:
        sim.stop()
        engine.dispose()


class Background:
    """``runner.run()`` in a thread; ``result()`` joins it (bounded)."""

    def __init__(self, runner: Runner) -> None:
        self.state: str | None = None
        self.thread = threading.Thread(target=self._run, args=(runner,), daemon=True)
        self.thread.start()

    def _run(self, runner: Runner) -> None:
        self.state = runner.run()

    def result(self, timeout_s: float = 60.0) -> str | None:
        self.thread.join(timeout_s)
        return self.state


def wait_until(predicate, timeout_s: float = 10.0, poll_s: float = 0.02):  # noqa: ANN001, ANN201
    """``predicate()``'s first true value, polled every ``poll_s`` wall seconds; None after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := predicate():
            return found
        time.sleep(poll_s)
    return None


def wait_for(predicate, timeout_s: float = 120.0, poll_s: float = 0.05):  # noqa: ANN001, ANN201
    """As ``wait_until``, but a timeout is a failure (AssertionError naming it)."""
    if found := wait_until(predicate, timeout_s, poll_s):
        return found
    raise AssertionError(f"not within {timeout_s} s")
