"""bench_lab: N simulated rigs under one `chiptwin lab serve` at an accelerated clock.

    .venv/bin/python -m benchmarks.bench_lab [--rigs 8] [--rate 60] [--seconds 60] [--kills 3] [--db URL]

Prints: readings/s stored and asked for (the rigs' channels over their poll periods × the clock
rate), zero loss (stored ≥ asked − one poll per channel), CPU per rig (runner) and of the
supervisor from /proc (psutil), and the wall time from a runner's SIGKILL to the first reading
its resumed runner stores (median of ``--kills``). Machine load is printed beside the figures.
Each rig is a renamed copy of examples/rigs/liver4.toml (4 chips; the issue's 16-chip rig is not
in the examples).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path

import psutil
from sqlalchemy import func, select

from protocols.lab.queueing import enqueue
from store.schema import Channel, Reading
from store.schema import Rig as RigRow
from tests.protocols.lab_helpers import dosing_protocol, sim_lab, wait_for


def _rig_readings(lab, rig: str) -> int:  # noqa: ANN001
    query = (
        select(func.count())
        .select_from(Reading)
        .join(Channel, Channel.id == Reading.channel_id)
        .join(RigRow, RigRow.id == Channel.rig_id)
        .where(RigRow.name == rig)
    )
    with lab.engine.connect() as c:
        return int(c.execute(query).scalar() or 0)


def _asked_per_s(lab, rate: float) -> float:  # noqa: ANN001
    return sum(rate / ch.poll_period_s for rig in lab.rigs.values() for ch in rig.spec.channels)


def _cpu_s(pid: int) -> float:
    try:
        t = psutil.Process(pid).cpu_times()
        return t.user + t.system
    except psutil.NoSuchProcess:
        return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rigs", type=int, default=8)
    parser.add_argument("--rate", type=float, default=60.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--db", default=os.environ.get("CHIPTWIN_BENCH_PG", ""))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.db or f"sqlite:///{Path(folder) / 'lab.db'}"
        with sim_lab(Path(folder), url, args.rigs, args.rate) as lab:
            supervisor = lab.serve()
            hours = args.seconds * args.rate / 3600 * 3 + 1  # outlasts the measurement
            for rig in lab.rigs:
                text = dosing_protocol(1, hours)
                enqueue(lab.engine, protocol_text=text, protocol_name="bench.toml", rig_name=rig, queued_by="bench")
            pids = wait_for(
                lambda: all(lab.runner_pid(r) for r in lab.rigs) and {r: lab.runner_pid(r) for r in lab.rigs}, 300
            )
            time.sleep(5)  # start-up done
            cpu0 = {r: _cpu_s(p) for r, p in pids.items()} | {"supervisor": _cpu_s(supervisor.pid)}
            n0, t0 = lab.readings(), time.monotonic()
            time.sleep(args.seconds)
            n1, t1 = lab.readings(), time.monotonic()
            cpu1 = {r: _cpu_s(p) for r, p in pids.items()} | {"supervisor": _cpu_s(supervisor.pid)}
            wall = t1 - t0
            stored, asked = (n1 - n0) / wall, _asked_per_s(lab, args.rate)
            print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (1 min)")
            print(f"{args.rigs} rigs at {args.rate:g}x for {wall:.1f} s wall: {stored:.1f} readings/s stored, "
                  f"{asked:.1f} readings/s asked for ({stored / asked:.0%})")  # fmt: skip
            for who in cpu1:
                print(f"  CPU {who}: {(cpu1[who] - cpu0[who]) / wall:.1%} of a core ({cpu1[who] - cpu0[who]:.1f} s)")
            restarts = []
            for i in range(args.kills):
                rig = list(lab.rigs)[i % len(lab.rigs)]
                pid = wait_for(lambda: lab.runner_pid(rig), 120)
                before = _rig_readings(lab, rig)
                os.kill(pid, signal.SIGKILL)
                killed = time.monotonic()
                wait_for(lambda: lab.runner_pid(rig) not in (None, pid), 120, 0.02)
                wait_for(lambda: _rig_readings(lab, rig) > before, 120, 0.02)  # noqa: B023
                restarts.append(time.monotonic() - killed)
                time.sleep(2)
            if restarts:
                print(f"SIGKILL → resumed runner's next stored reading: median {statistics.median(restarts):.2f} s "
                      f"(all: {', '.join(f'{r:.2f}' for r in restarts)} s; target ≤ 10 s)")  # fmt: skip
            print(f"readings before the kills {n1}, at the end {lab.readings()} (never fewer)")


if __name__ == "__main__":
    main()
