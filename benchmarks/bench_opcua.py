"""OPC UA subscription latency: from a reading's commit to the client's data-change notification.

    .venv/bin/python -m benchmarks.bench_opcua [--readings 20] [--poll-period-s 0.5] [--channels 1]

The endpoint (``python -m ui.endpoints.opcua``) runs in its own process over a fresh SQLite store;
this process commits readings at random moments (so they fall anywhere in the poll period) and
an asyncua client (publishing interval 50 ms) timestamps each notification. ``--channels N`` gives
the store N channels (16 per chip, 8 chips per rig), all of them written with each reading, so
each poll of the endpoint carries a lab's worth of changes (512: 8 rigs × 16 chips × 4). Baseline: a plain
store poll at the same period in a thread of this process, timed the same way — the latency any
poller of the store has, which the endpoint adds its OPC UA path to.
Target: endpoint latency ≤ poll period + 200 ms (median and p95 reported; CPU beside wall time).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from asyncua import Client, ua

from store import make_engine
from store.engine import session
from store.ingest import ReadingIn, ingest_readings
from store.migrate import upgrade
from store.queries import latest_readings
from store.schema import Channel, Chip, Rig

REPO = Path(__file__).resolve().parents[1]


def _fill(url: str, n_channels: int) -> list[int]:
    """The watched channel (rig bench-1, chip liver-1, oxygen) first, then the other channels."""
    engine = make_engine(url, create=True)
    upgrade(engine)
    ids: list[int] = []
    with session(engine) as s:
        for r in range(max(1, -(-n_channels // 64))):
            rig = Rig(name=f"bench-{r + 1}", created_utc_s=time.time())
            s.add(rig)
            s.flush()
            for c in range(16):
                chip = Chip(rig_id=rig.id, name=f"liver-{c + 1}", organ="liver")
                s.add(chip)
                s.flush()
                for quantity in ("oxygen", "ph", "teer", "glucose"):
                    if len(ids) == n_channels:
                        break
                    channel = Channel(
                        rig_id=rig.id,
                        chip_id=chip.id,
                        name=f"{chip.name}/{quantity}",
                        quantity=quantity,
                        unit="percent",
                    )
                    s.add(channel)
                    s.flush()
                    ids.append(int(channel.id or 0))
        s.commit()
    engine.dispose()
    return ids


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stats(latencies_s: list[float]) -> str:
    ordered = sorted(latencies_s)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(ordered) * 1e3:.0f} ms, p95 {p95 * 1e3:.0f} ms, max {ordered[-1] * 1e3:.0f} ms"


async def _endpoint_latencies(url: str, endpoint: str, channel_ids: list[int], n: int) -> list[float]:
    engine = make_engine(url)
    arrived: asyncio.Queue[tuple[float, float]] = asyncio.Queue()

    class Handler:
        def datachange_notification(self, node, value, data):
            arrived.put_nowait((time.time(), float("nan") if value is None else float(value)))  # None: bad status

    async with Client(endpoint, timeout=30) as client:
        ns = await client.get_namespace_index("urn:chiptwin:opcua")
        node = client.get_node(ua.NodeId("rig/bench-1/channel/liver-1/oxygen", ns))
        subscription = await client.create_subscription(50, Handler())
        await subscription.subscribe_data_change(node)
        await asyncio.wait_for(arrived.get(), 30)  # the initial (waiting-for-data) value
        latencies = []
        for k in range(n):
            await asyncio.sleep(random.uniform(0.3, 0.9))
            t = time.time()
            await asyncio.to_thread(ingest_readings, engine, [ReadingIn(c, t, float(k)) for c in channel_ids])
            committed = time.time()
            while True:
                seen_at, value = await asyncio.wait_for(arrived.get(), 30)
                if value == float(k):
                    break
            latencies.append(seen_at - committed)
    engine.dispose()
    return latencies


def _baseline_latencies(url: str, channel_ids: list[int], n: int, period_s: float) -> list[float]:
    """A store poller at the same period: commit → the poll that first sees the reading."""
    engine = make_engine(url)
    seen: dict[float, float] = {}
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            started = time.monotonic()
            for r in latest_readings(engine):
                if r.channel_id == channel_ids[0] and r.value is not None:
                    seen.setdefault(r.value, time.time())
            stop.wait(max(0.0, period_s - (time.monotonic() - started)))

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    latencies = []
    for k in range(n):
        time.sleep(random.uniform(0.3, 0.9))
        value = 1000.0 + k
        t = time.time()
        ingest_readings(engine, [ReadingIn(c, t, value) for c in channel_ids])
        committed = time.time()
        deadline = time.monotonic() + 30
        while value not in seen and time.monotonic() < deadline:
            time.sleep(0.005)
        latencies.append(seen[value] - committed)
    stop.set()
    poller.join(timeout=10)
    engine.dispose()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=20)
    parser.add_argument("--poll-period-s", type=float, default=0.5)
    parser.add_argument("--channels", type=int, default=1, help="channels in the store, all written each time")
    arguments = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench_opcua_"))
    os.environ.setdefault("CHIPTWIN_AUDIT_KEY_FILE", str(folder / "audit.key"))
    os.environ.setdefault("CHIPTWIN_AUDIT_ANCHOR_DIR", str(folder / "anchors"))
    url = f"sqlite:///{folder / 'lab.db'}"
    channel_ids = _fill(url, arguments.channels)
    endpoint = f"opc.tcp://127.0.0.1:{_port()}"
    server = subprocess.Popen(
        [sys.executable, "-m", "ui.endpoints.opcua", "--db", url, "--endpoint", endpoint]
        + ["--poll-period-s", str(arguments.poll_period_s), "--security", "none"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout and "serving" in server.stdout.readline(), "the endpoint did not start"
        load = os.getloadavg()
        server_cpu0 = sum(psutil.Process(server.pid).cpu_times()[:2])
        wall0, cpu0 = time.perf_counter(), time.process_time()
        opcua = asyncio.run(_endpoint_latencies(url, endpoint, channel_ids, arguments.readings))
        wall_s, cpu_s = time.perf_counter() - wall0, time.process_time() - cpu0
        server_cpu_s = sum(psutil.Process(server.pid).cpu_times()[:2]) - server_cpu0
    finally:
        server.terminate()
        server.wait(timeout=60)
    baseline = _baseline_latencies(url, channel_ids, arguments.readings, arguments.poll_period_s)
    target_s = arguments.poll_period_s + 0.2
    print(
        f"load average (1/5/15 min) at start: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores"
    )
    print(
        f"{arguments.readings} readings of {arguments.channels} channels each, "
        f"store poll period {arguments.poll_period_s * 1e3:.0f} ms"
    )
    print(f"OPC UA endpoint, commit → client notification: {_stats(opcua)}")
    print(f"baseline, commit → plain store poll sees it:   {_stats(baseline)}")
    print(f"endpoint process CPU {server_cpu_s:.2f} s and client+writer CPU {cpu_s:.2f} s over {wall_s:.1f} s wall")
    verdict = "met" if sorted(opcua)[round(0.95 * (len(opcua) - 1))] <= target_s else "NOT met"
    print(f"target p95 ≤ {target_s * 1e3:.0f} ms: {verdict}")


if __name__ == "__main__":
    main()
