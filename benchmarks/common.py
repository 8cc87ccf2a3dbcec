"""Small helpers shared by the benchmarks: timing medians and writing results."""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

RESULTS = Path(__file__).resolve().parent / "results"


def median_seconds(work: Callable[[], object], repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def write_results(name: str, figures: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    figures = {
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}",
        "note": "shared, noisy 2-core machine: medians and ratios measured in one run",
        **figures,
    }
    path.write_text(json.dumps(figures, indent=2) + "\n")
    return path


def timed(work, repeats: int) -> dict:
    """Median wall and CPU seconds of ``repeats`` runs, and the last result."""
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = work()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"wall_s": statistics.median(walls), "cpu_s": statistics.median(cpus), "repeats": repeats, "result": result}
