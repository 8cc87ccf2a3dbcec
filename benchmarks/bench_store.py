"""Store benchmark: batched vs one-row-per-transaction ingest, and the downsampled window query.

    .venv/bin/python -m benchmarks.bench_store [--readings 10000000]

Targets (issue #2): batched ingest ≥ 50× the naive path and ≥ 100,000 readings/s; a 24 h
window of one 1 Hz channel, downsampled to 2,000 points, in ≤ 100 ms with 10 million
readings stored. Both paths are measured in the same run on the same SQLite settings.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.common import median_seconds, write_results
from store import make_engine
from store.engine import session
from store.ingest import ReadingIn, ingest_readings
from store.migrate import upgrade
from store.queries import latest_readings, window
from store.schema import Channel, Rig

DAY_S = 86_400.0
T0 = 1.8e9  # a UTC time in 2027


def _new_store(folder: Path, n_channels: int):
    engine = make_engine(str(folder / "bench.db"), create=True)
    upgrade(engine)
    with session(engine) as s:
        rig = Rig(name="bench", created_utc_s=T0)
        s.add(rig)
        s.flush()
        chans = [Channel(rig_id=rig.id, name=f"o2-{i}", quantity="oxygen", unit="percent") for i in range(n_channels)]
        s.add_all(chans)
        s.commit()
        return engine, [c.id for c in chans]


def _poller_stream(channel_ids: list[int], seconds: int, start_s: float = T0):
    """Readings as a 1 Hz poller produces them: every channel, second after second."""
    rng = np.random.default_rng(1)
    noise = rng.normal(0.0, 0.5, 4096)
    for k in range(seconds):
        t = start_s + k
        for j, channel_id in enumerate(channel_ids):
            yield ReadingIn(channel_id, t, 80.0 + noise[(k + j) & 4095])


def bench_ingest(folder: Path, naive_n: int, batched_n: int) -> dict:
    (folder / "ingest").mkdir()
    engine, ids = _new_store(folder / "ingest", 10)
    # Readings are made before the clock starts: this measures the store, not the producer.
    naive = list(_poller_stream(ids, naive_n // len(ids)))
    start = time.perf_counter()
    ingest_readings(engine, naive, batch_size=1)
    naive_rate = len(naive) / (time.perf_counter() - start)
    batched = list(_poller_stream(ids, batched_n // len(ids), start_s=T0 + 1e6))
    start = time.perf_counter()
    ingest_readings(engine, batched, batch_size=10_000)
    batched_rate = len(batched) / (time.perf_counter() - start)
    engine.dispose()
    return {
        "naive_readings_per_s": naive_rate,
        "batched_readings_per_s": batched_rate,
        "ratio": batched_rate / naive_rate,
        "naive_n": naive_n,
        "batched_n": batched_n,
    }


def bench_window(folder: Path, total_readings: int, console: Console) -> dict:
    (folder / "window").mkdir()
    n_channels = 12
    seconds = total_readings // n_channels
    engine, ids = _new_store(folder / "window", n_channels)
    start = time.perf_counter()
    ingest_readings(engine, _poller_stream(ids, seconds))
    fill_s = time.perf_counter() - start
    console.print(f"filled {seconds * n_channels:,} readings in {fill_s:.1f} s")
    rng = np.random.default_rng(2)
    starts = T0 + rng.uniform(0, max(seconds - DAY_S, 1.0), 25)
    points = []

    def query():
        t0 = float(starts[len(points) % len(starts)])
        points.append(len(window(engine, ids[3], t0, t0 + DAY_S, max_points=2000)))

    query()  # first touch of the file pages
    window_s = median_seconds(query, 25)
    latest_s = median_seconds(lambda: latest_readings(engine), 10)
    size_mb = (folder / "window" / "bench.db").stat().st_size / 1e6
    engine.dispose()
    return {
        "stored_readings": seconds * n_channels,
        "fill_s": fill_s,
        "window_24h_to_2000_median_ms": window_s * 1e3,
        "window_points": int(np.median(points)),
        "latest_per_channel_median_ms": latest_s * 1e3,
        "db_size_mb": size_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readings", type=int, default=10_000_000, help="readings stored for the window query")
    parser.add_argument("--naive", type=int, default=5_000, help="readings ingested one per transaction")
    parser.add_argument("--batched", type=int, default=1_000_000, help="readings ingested in batches")
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        ingest = bench_ingest(Path(tmp), args.naive, args.batched)
        query = bench_window(Path(tmp), args.readings, console)
    table = Table(title="Store benchmark (SQLite, WAL) — medians, shared noisy machine")
    for column in ("measure", "value", "target", "met"):
        table.add_column(column)
    rows = [
        ("naive ingest (1 row / transaction)", f"{ingest['naive_readings_per_s']:,.0f} /s", "baseline", ""),
        (
            "batched ingest (10,000 / transaction)",
            f"{ingest['batched_readings_per_s']:,.0f} /s",
            "≥ 100,000 /s",
            ingest["batched_readings_per_s"] >= 100_000,
        ),
        ("batched ÷ naive", f"{ingest['ratio']:.0f}×", "≥ 50×", ingest["ratio"] >= 50),
        (
            f"24 h window → 2,000 pts ({query['stored_readings']:,} stored)",
            f"{query['window_24h_to_2000_median_ms']:.1f} ms",
            "≤ 100 ms",
            query["window_24h_to_2000_median_ms"] <= 100,
        ),
        ("latest value of 12 channels", f"{query['latest_per_channel_median_ms']:.2f} ms", "", ""),
    ]
    for name, value, target, met in rows:
        table.add_row(name, value, target, {True: "yes", False: "NO", "": ""}[met])
    console.print(table)
    path = write_results("store", {"ingest": ingest, "window": query})
    console.print(f"figures written to {path}")


if __name__ == "__main__":
    main()
