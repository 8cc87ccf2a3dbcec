"""SiLA 2 round trips: EnqueueRun and ReadLatest through the server, beside the same operation in-process.

    .venv/bin/python -m benchmarks.bench_sila [--repeats 40] [--readings 20000]

The server runs as its own process (``python -m ui.endpoints.sila``, plain text on loopback) over a
SQLite store in a temporary folder; the client is the generic ``sila2`` client in this process.
Baselines, in this process on the same store: ``protocols.lab.queueing.enqueue`` (with and
without the scrypt sign-in every SiLA enqueue makes) and ``store.repositories.channels.latest``.
Each figure: median and p95 of wall time per call, and CPU time per call (client process and
server process, from their CPU counters) — with the machine's load average beside them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import psutil
from rich.console import Console
from rich.table import Table
from sila2.client import SilaClient
from sqlalchemy import insert, select

from benchmarks.common import write_results
from protocols.lab import queueing
from store import make_engine
from store.migrate import upgrade
from store.repositories import channels
from store.schema import Channel, Reading, Rig
from ui.panel.auth import add_user, sign_in

REPO = Path(__file__).resolve().parents[1]
RIG = REPO / "examples" / "rigs" / "liver4.toml"
PROTOCOL = (REPO / "examples" / "protocols" / "overnight_dosing.toml").read_text(encoding="utf-8")
PASSWORD = "bench-password-1"


def _store(folder: Path, n_readings: int) -> str:
    url = f"sqlite:///{folder / 'lab.db'}"
    engine = make_engine(url, create=True)
    upgrade(engine)
    now = time.time()
    with engine.begin() as c:
        c.execute(insert(Rig).values(name="liver4", config_toml=RIG.read_text(), created_utc_s=now))
        rig_id = c.execute(select(Rig.id)).scalar_one()
        c.execute(insert(Channel).values(rig_id=rig_id, name="chip1_o2", quantity="oxygen", unit="%"))
        channel_id = c.execute(select(Channel.id)).scalar_one()
        rows = [
            {"channel_id": channel_id, "t_utc_s": now - i, "value": 18.0 + i % 7, "quality": 0}
            for i in range(n_readings)
        ]
        c.execute(insert(Reading), rows)
    add_user(engine, "sci", "scientist", PASSWORD)
    engine.dispose()
    return url


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _connect(port: int, timeout_s: float = 60.0) -> SilaClient:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return SilaClient("127.0.0.1", port, insecure=True)
        except Exception:  # noqa: BLE001 (the server is still starting)
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _measure(work: Callable[[], object], repeats: int, server: psutil.Process | None) -> dict[str, float]:
    """Median and p95 wall ms per call; CPU ms per call of this process and of the server."""
    work()  # warm: the first call pays connection and import costs
    walls = []
    client_cpu0 = time.process_time()
    server_cpu0 = sum(server.cpu_times()[:2]) if server else 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        walls.append(time.perf_counter() - start)
    client_cpu = (time.process_time() - client_cpu0) / repeats
    server_cpu = (sum(server.cpu_times()[:2]) - server_cpu0) / repeats if server else 0.0
    walls.sort()
    return {
        "median_ms": 1e3 * statistics.median(walls),
        "p95_ms": 1e3 * walls[min(len(walls) - 1, int(0.95 * len(walls)))],
        "client_cpu_ms": 1e3 * client_cpu,
        "server_cpu_ms": 1e3 * server_cpu,
    }


def run(repeats: int, n_readings: int) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        url = _store(Path(tmp), n_readings)
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "ui.endpoints.sila", "--db", url, "--address", f"127.0.0.1:{port}", "--insecure"],
            cwd=REPO,
        )
        engine = make_engine(url)
        try:
            client = _connect(port)
            proc = psutil.Process(server.pid)
            enqueue = client.RunQueue.EnqueueRun
            read = client.Channels.ReadLatest

            def direct_enqueue() -> int:
                return queueing.enqueue(
                    engine, protocol_text=PROTOCOL, protocol_name="o.toml", rig_name="liver4", queued_by="sci"
                )

            def signed_enqueue() -> int:
                assert sign_in(engine, "sci", PASSWORD, where="bench") is not None
                return direct_enqueue()

            figures = {
                "EnqueueRun via SiLA": _measure(
                    lambda: enqueue("liver4", "o.toml", PROTOCOL, "", "sci", PASSWORD), repeats, proc
                ),
                "enqueue in-process, with sign-in": _measure(signed_enqueue, repeats, None),
                "enqueue in-process, no sign-in": _measure(direct_enqueue, repeats, None),
                "ReadLatest via SiLA": _measure(lambda: read("liver4", "chip1_o2"), repeats, proc),
                "channels.latest in-process": _measure(
                    lambda: channels.latest(engine, "liver4", "chip1_o2"), repeats, None
                ),
            }
            client.close()
        finally:
            engine.dispose()
            server.terminate()
            server.wait(timeout=30)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--readings", type=int, default=20000, help="stored readings of the channel read")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    figures = run(args.repeats, args.readings)
    load_after = os.getloadavg()[0]
    table = Table(title=f"SiLA 2 round trips ({args.repeats} calls each; load {load_before:.1f} → {load_after:.1f})")
    for column in ("operation", "median ms", "p95 ms", "client CPU ms/call", "server CPU ms/call"):
        table.add_column(column, justify="left" if column == "operation" else "right")
    for name, f in figures.items():
        table.add_row(
            name,
            f"{f['median_ms']:.1f}",
            f"{f['p95_ms']:.1f}",
            f"{f['client_cpu_ms']:.1f}",
            f"{f['server_cpu_ms']:.1f}" if "SiLA" in name else "–",
        )
    Console().print(table)
    path = write_results(
        "sila",
        {
            "repeats": args.repeats,
            "readings": args.readings,
            "load_1min": [load_before, load_after],
            "figures": figures,
        },
    )
    print(f"results: {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
