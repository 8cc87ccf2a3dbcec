"""Scale-out benchmark (issue #13 item 5): the virtual population in this process vs a LocalCluster(2).

    .venv/bin/python -m benchmarks.bench_scale_out [--n 100000] [--repeats 3]

Reports medians of: wall time in this process; the LocalCluster's start-up (two worker
processes, one thread each) on its own; wall time of the same population on the cluster
once started; and CPU time beside each wall time (this process's CPU, plus the workers'
CPU measured inside them with ``client.run``). The machine's load average is written with
the figures: on a shared 2-core machine a cluster of 2 can only win when the cores are free.
The summaries must be equal (they are seeded per block), which the benchmark checks.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from rich.console import Console
from rich.table import Table

from benchmarks.common import write_results

DRUG, REGIMEN, TARGET = "example_chip_compound", "100 mg q12h x14 oral", (0.3, 1.0)


def _population(n: int, **where):
    from twin.drugs import load_drug
    from twin.patients import Target, parse_regimen, run_population

    target = Target("auc_tau_ss", *TARGET)
    return run_population(load_drug(DRUG), parse_regimen(REGIMEN), n, seed=1, target=target, **where)


def _in_process(n: int) -> tuple[float, float, dict]:
    wall, cpu = time.perf_counter(), time.process_time()
    summary = _population(n)
    return time.perf_counter() - wall, time.process_time() - cpu, summary.to_dict()


def _on_cluster(n: int) -> tuple[float, float, float, dict]:
    import distributed

    started = time.perf_counter()
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        startup = time.perf_counter() - started
        before = sum(client.run(time.process_time).values())
        wall, cpu = time.perf_counter(), time.process_time()
        summary = _population(n, dask=client)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        workers_cpu = sum(client.run(time.process_time).values()) - before
    return startup, wall, cpu + workers_cpu, summary.to_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="virtual patients per run")
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    load_before = os.getloadavg()[0]
    _population(2000)  # imports and first-call costs out of the timings
    here = [_in_process(options.n) for _ in range(options.repeats)]
    there = [_on_cluster(options.n) for _ in range(options.repeats)]
    assert all(r[2] == here[0][2] for r in here) and all(r[3] == here[0][2] for r in there), "summaries differ"
    figures = {
        "n_patients": options.n,
        "repeats": options.repeats,
        "load_average_1min_before": load_before,
        "load_average_1min_after": os.getloadavg()[0],
        "in_process_wall_s_median": statistics.median(r[0] for r in here),
        "in_process_cpu_s_median": statistics.median(r[1] for r in here),
        "local_cluster_2_startup_s_median": statistics.median(r[0] for r in there),
        "local_cluster_2_wall_s_median": statistics.median(r[1] for r in there),
        "local_cluster_2_cpu_s_median": statistics.median(r[2] for r in there),
        "summaries_equal": True,
    }
    table = Table(title=f"virtual population, {options.n:,} patients (median of {options.repeats})")
    for column in ("where", "start-up (s)", "wall (s)", "CPU (s)"):
        table.add_column(column)
    table.add_row(
        "this process", "—", f"{figures['in_process_wall_s_median']:.2f}", f"{figures['in_process_cpu_s_median']:.2f}"
    )
    table.add_row(
        "LocalCluster(2)",
        f"{figures['local_cluster_2_startup_s_median']:.2f}",
        f"{figures['local_cluster_2_wall_s_median']:.2f}",
        f"{figures['local_cluster_2_cpu_s_median']:.2f}",
    )
    Console().print(table)
    Console().print(f"load average (1 min): {load_before:.2f} before, {figures['load_average_1min_after']:.2f} after")
    print(write_results("scale_out", figures))


if __name__ == "__main__":
    main()
