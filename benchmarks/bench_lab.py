"""bench_lab: N simulated rigs × 16 chips under one `chiptwin lab serve` at an accelerated clock.

    .venv/bin/python -m benchmarks.bench_lab [--rigs 8] [--rate 60] [--seconds 60] [--kills 3] [--db URL]

Measures, with the machine's load average beside the figures (results: benchmarks/results/lab.json):

* readings/s stored over a window of ``--seconds`` wall seconds (counted by the readings' own
  times, so a runner's start-up before the window does not count against it), beside the rate
  the rig files ask for (the channels the runners poll, over their poll periods × the clock rate);
* **every poll slot of the window, accounted for** by the store's poll ledger
  (store.repositories.polls): expected = stored + skipped (the poller's own record: late, or the
  device had no value yet) + down (no runner) + pending (not yet written when counted) + **lost**.
  Lost is a reading the poller produced that never reached the store: it must be 0, and the run
  exits 1 when it is not;
* CPU per runner and of the supervisor (user + system seconds from /proc, psutil) per wall second;
* OPC UA subscription latency: a client subscribed to one channel (its poll period is 1 wall s
  at 60×) notes each notification's arrival against the wall time its reading was taken;
* restart: SIGKILL of a runner → the first reading its resumed runner stores (median of ``--kills``,
  15 s apart: the supervisor's spare runner, docs/lab.md, is ready again by then); and the ledger
  of the whole runs after the kills (the dead runners' time is down, never lost).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import psutil
from sqlalchemy import func, select

from benchmarks.common import write_results
from instruments.rig.factory import endpoints_resolver, open_rig
from protocols.lab.queueing import enqueue
from protocols.run.acquire import poll_channels
from store.repositories import polls, runs
from store.schema import Channel, Reading
from store.schema import Rig as RigRow
from tests.protocols.lab_helpers import SimLab, dosing_protocol, sim_lab, wait_for

REPO = Path(__file__).resolve().parents[1]
RIG16 = REPO / "examples" / "rigs" / "liver16.toml"
WATCHED = ("liver1", "inlet_pressure")
SPARE_READY_S = 15.0  # between kills: the spare runner started after the last restart has done its imports  # the OPC UA subscriber's channel: 60 s poll period


def _rig_readings(lab: SimLab, rig: str) -> int:
    query = (
        select(func.count())
        .select_from(Reading)
        .join(Channel, Channel.id == Reading.channel_id)
        .join(RigRow, RigRow.id == Channel.rig_id)
        .where(RigRow.name == rig)
    )
    with lab.engine.connect() as c:
        return int(c.execute(query).scalar() or 0)


def polled_periods(lab: SimLab, rig: str) -> dict[str, float]:
    """The poll period of each channel the runner's poller reads, chosen as the runner chooses them.

    A pump's ``dispensed`` channel is not polled: the intent log reads a pump's counter around each
    dose (protocols.run.acquire). Counting those channels in the expected rate is what made an
    earlier bench_lab report 80 % of the expected readings (4 of liver4's 13 channels, 18 % of its
    rate) with nothing lost."""
    with open_rig(lab.rigs[rig], endpoints_resolver(lab.sims[rig].endpoints_document())) as devices:
        channels, _skipped = poll_channels(lab.rigs[rig], devices)
    return {ch.name: ch.period_s for ch in channels}


def _run_ids(lab: SimLab) -> dict[str, list[int]]:
    found: dict[str, list[int]] = defaultdict(list)
    for run in runs.listing(lab.engine):
        found[run.rig].append(run.id)
    return found


def _slots(lab: SimLab, window: dict[str, tuple[float, float]] | None = None) -> polls.SlotCounts:
    """Every rig's runs' poll slots (in each rig's clock window, or all of each run), summed."""
    total = polls.SlotCounts()
    for rig, ids in _run_ids(lab).items():
        for run_id in ids:
            bounds = window[rig] if window else (None, None)
            total.add(polls.ledger(lab.engine, run_id, *bounds).total)
    return total


def _window_slots(lab: SimLab, window: dict[str, tuple[float, float]], wait_s: float) -> polls.SlotCounts:
    """The window's slots once the runners have written them (pending 0), or after ``wait_s`` wall seconds."""
    deadline = time.monotonic() + wait_s
    while (counts := _slots(lab, window)).pending and time.monotonic() < deadline:
        time.sleep(0.5)
    return counts


def _silent(lab: SimLab, periods: dict[str, dict[str, float]], window: dict[str, tuple[float, float]]) -> int:
    """Polled channels without any reading in the window."""
    silent = 0
    for rig, (from_s, to_s) in window.items():
        query = (
            select(Channel.name)
            .join(Reading, Reading.channel_id == Channel.id)
            .join(RigRow, RigRow.id == Channel.rig_id)
            .where(RigRow.name == rig, Reading.t_utc_s >= from_s, Reading.t_utc_s < to_s)
            .distinct()
        )
        with lab.engine.connect() as c:
            heard = set(c.execute(query).scalars())
        silent += len(set(periods[rig]) - heard)
    return silent


def _asked_per_s(periods: dict[str, dict[str, float]], rate: float) -> float:
    return sum(rate / period for rig in periods.values() for period in rig.values())


def _cpu_s(pid: int) -> float:
    try:
        t = psutil.Process(pid).cpu_times()
        return t.user + t.system
    except psutil.NoSuchProcess:
        return 0.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Subscriber:
    """An asyncua client in its own thread: the wall delay of each data change of one channel."""

    def __init__(self, endpoint: str, rig: str, channel: str, wall_of) -> None:  # noqa: ANN001
        self.endpoint, self.node_id, self.wall_of = endpoint, f"rig/{rig}/channel/{channel}", wall_of
        self.delays_s: list[float] = []
        self.error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def start(self) -> Subscriber:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def datachange_notification(self, node, value, data) -> None:  # noqa: ANN001
        arrived = time.time()
        stamp = data.monitored_item.Value.SourceTimestamp
        if stamp is not None:
            self.delays_s.append(arrived - self.wall_of(stamp.timestamp()))

    async def _main(self) -> None:
        from asyncua import Client, ua

        while not self._stop.is_set():  # until the endpoint is up and shows the channel
            try:
                async with Client(self.endpoint, timeout=30) as client:
                    ns = await client.get_namespace_index("urn:chiptwin:opcua")
                    node = client.get_node(ua.NodeId(self.node_id, ns))
                    await node.read_data_value()  # BadNodeIdUnknown until the endpoint has polled the store
                    subscription = await client.create_subscription(50, self)
                    # every new reading, also one with the same value as the last (the sim's pressure is flat)
                    trigger = ua.DataChangeFilter(Trigger=ua.DataChangeTrigger.StatusValueTimestamp)
                    await subscription._subscribe(node, mfilter=trigger)  # asyncua: the public call has no filter
                    self.error = ""
                    while not self._stop.is_set():
                        await asyncio.sleep(0.1)
            except Exception as exc:  # reported with the figures if it never connects
                self.error = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(0.5)


def _subscribe(lab: SimLab, endpoint: str) -> Subscriber:
    rig, channel = WATCHED
    clock = lab.sims[rig].clock

    def wall_of(t_utc_s: float) -> float:
        return clock.anchor_unix_s + (t_utc_s - clock.start_utc_s) / clock.rate  # type: ignore[attr-defined]

    subscriber = Subscriber(endpoint, rig, channel, wall_of).start()
    wait_for(lambda: subscriber.delays_s, 120, 0.1)  # the value already there comes first
    subscriber.delays_s.clear()
    return subscriber


def _restart(lab: SimLab, rig: str) -> float:
    """SIGKILL the rig's runner; wall seconds until its resumed runner stores a reading."""
    pid = wait_for(lambda: lab.runner_pid(rig), 120)
    before = _rig_readings(lab, rig)
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: lab.runner_pid(rig) not in (None, pid), 120, 0.02)
    wait_for(lambda: _rig_readings(lab, rig) > before, 120, 0.02)
    return time.monotonic() - killed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rigs", type=int, default=8)
    parser.add_argument("--rate", type=float, default=60.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--rig", type=Path, default=RIG16, help="the rig file each simulated rig copies")
    parser.add_argument("--db", default=os.environ.get("CHIPTWIN_BENCH_PG", ""))
    args = parser.parse_args()
    figures: dict = {"rigs": args.rigs, "rate": args.rate, "rig_file": args.rig.name, "window_s": args.seconds}
    with tempfile.TemporaryDirectory() as folder:
        url = args.db or f"sqlite:///{Path(folder) / 'lab.db'}"
        figures["store"] = url.split(":", 1)[0]
        with sim_lab(Path(folder), url, args.rigs, args.rate, rig_file=args.rig) as lab:
            periods = {r: polled_periods(lab, r) for r in lab.rigs}
            endpoint = f"opc.tcp://127.0.0.1:{_free_port()}"
            with open(Path(folder) / "lab.toml", "a", encoding="utf-8") as lab_file:  # a plain subscriber: no keys
                lab_file.write('\n[opcua]\nsecurity = ["none"]\n')
            supervisor = lab.serve(args=("--opcua", endpoint))
            hours = 24.0  # 24 min wall at 60x: outlasts a slow start-up, the window and the kills
            for rig in lab.rigs:
                text = dosing_protocol(1, hours)
                enqueue(lab.engine, protocol_text=text, protocol_name="bench.toml", rig_name=rig, queued_by="bench")
            wait_for(lambda: all(_rig_readings(lab, r) for r in lab.rigs), 300, 0.2)  # every runner polls
            pids = {r: lab.runner_pid(r) or 0 for r in lab.rigs}
            subscriber = _subscribe(lab, endpoint)
            cpu0 = {r: _cpu_s(p) for r, p in pids.items()} | {"supervisor": _cpu_s(supervisor.pid)}
            sim0 = {r: sim.clock.now_s() for r, sim in lab.sims.items()}
            t0, load0 = time.monotonic(), os.getloadavg()[0]
            time.sleep(args.seconds)
            wall = time.monotonic() - t0
            sim1 = {r: sim.clock.now_s() for r, sim in lab.sims.items()}
            cpu1 = {r: _cpu_s(p) for r, p in pids.items()} | {"supervisor": _cpu_s(supervisor.pid)}
            subscriber.stop()
            window = {r: (sim0[r], sim1[r]) for r in lab.rigs}
            slots = _window_slots(lab, window, wait_s=60.0)
            stored = slots.stored / wall
            asked = _asked_per_s(periods, args.rate)
            runner_cpu = [(cpu1[r] - cpu0[r]) / wall for r in lab.rigs]
            delays = sorted(subscriber.delays_s)
            figures |= {
                "load_average_1min": [round(load0, 2), round(os.getloadavg()[0], 2)],
                "cores": os.cpu_count(),
                "readings_per_s_stored": round(stored, 2),
                "readings_per_s_asked": round(asked, 2),
                "polled_channels_per_rig": len(periods[next(iter(lab.rigs))]),
                "poll_slots_in_window": {"unit": "poll slots", **slots.to_dict()},
                "channels_without_reading": _silent(lab, periods, window),
                "cpu_per_runner_core_fraction": {
                    "median": round(statistics.median(runner_cpu), 4),
                    "max": round(max(runner_cpu), 4),
                },
                "cpu_supervisor_core_fraction": round((cpu1["supervisor"] - cpu0["supervisor"]) / wall, 4),
                "opcua_latency_s": {
                    "median": round(statistics.median(delays), 3) if delays else None,
                    "max": round(delays[-1], 3) if delays else None,
                    "notifications": len(delays),
                    "target_s": 60.0 / args.rate + 0.2,
                    "error": subscriber.error,
                },
            }
            write_results("lab", figures)  # the window's figures, whatever the kills do
            restarts = []
            for i in range(args.kills):  # deaths are rare: each finds the supervisor's spare runner ready
                time.sleep(SPARE_READY_S)
                restarts.append(_restart(lab, list(lab.rigs)[i % len(lab.rigs)]))
            figures["restart_s"] = {
                "median": round(statistics.median(restarts), 2) if restarts else None,
                "all": [round(r, 2) for r in restarts],
                "target_s": 10.0,
                "load_average_1min": round(os.getloadavg()[0], 2),
            }
            time.sleep(5.0)  # the last resumed runner writes a few batches: its session has a stored tail
            figures["poll_slots_whole_runs"] = {"unit": "poll slots", **_slots(lab).to_dict()}
    path = write_results("lab", figures)
    _print(figures, path)
    if figures["poll_slots_in_window"]["lost"] or figures["poll_slots_whole_runs"]["lost"]:
        raise SystemExit("LOST poll slots: a reading the poller produced never reached the store (a bug)")


def _print(f: dict, path: Path) -> None:
    print(f"machine: {f['cores']} cores, load average {f['load_average_1min']} (1 min, start/end of the window)")
    print(f"{f['rigs']} rigs ({f['rig_file']}) at {f['rate']:g}x, {f['window_s']:g} s wall, store {f['store']}: "
          f"{f['readings_per_s_stored']} readings/s stored, {f['readings_per_s_asked']} asked for; "
          f"silent channels {f['channels_without_reading']}")  # fmt: skip
    for name in ("poll_slots_in_window", "poll_slots_whole_runs"):
        c = f.get(name)
        if c:
            print(f"{name}: expected {c['expected']} = stored {c['stored']} + skipped {c['skipped']} "
                  f"{c['skipped_by_reason']} + down {c['down']} + pending {c['pending']} + LOST {c['lost']} slots")  # fmt: skip
    print(
        f"CPU per runner {f['cpu_per_runner_core_fraction']} of a core; supervisor {f['cpu_supervisor_core_fraction']}"
    )
    print(f"OPC UA subscription latency: {f['opcua_latency_s']}")
    print(f"SIGKILL → resumed runner's next stored reading: {f['restart_s']}")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
