"""Many-start FOCE-I population fits (issue #13 item 5): the starts in this process vs on a LocalCluster(2).

    .venv/bin/python -m benchmarks.bench_population_starts [--case acop_oral_md] [--starts 4] [--repeats 3]

The fit of ``calibration.io.reference_pk`` (ACOP oral multiple dose by default: 120 subjects, the
slowest reference fit; ``pheno`` also) with ``--starts`` starts, covariance step included, timed
in this process and with its starts as tasks on a ``distributed.LocalCluster`` of two single-threaded
processes (started once, its start-up reported on its own). Medians of ``--repeats``: wall time,
and CPU time beside it (this process's, plus the workers' measured inside them with
``client.run``). The records must be equal apart from their wall time, which the benchmark checks.
The load average is written with the figures: on a shared 2-core machine two workers only win
when both cores are free.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from rich.console import Console
from rich.table import Table

from benchmarks.common import write_results
from calibration.estimate.multistart import compute_on
from calibration.estimate.population import fit_population
from calibration.io.reference_pk import acop_oral_md, phenobarbital
from twin.compute import ComputePlan

CASES = {"acop_oral_md": acop_oral_md, "pheno": phenobarbital}


def _fit(case, n_starts: int):  # noqa: ANN001, ANN202
    model = case.model(case.problem.predict)
    return fit_population(model, case.problem.population_data(), case.theta0, sigma0=case.sigma0, n_starts=n_starts)


def _record(record) -> dict:  # noqa: ANN001
    figures = record.to_dict()
    figures.pop("wall_time_s")
    return figures


def main() -> None:
    import distributed

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), default="acop_oral_md")
    parser.add_argument("--starts", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    console = Console()
    case = CASES[args.case]()
    load_before = os.getloadavg()
    here_wall, here_cpu, cluster_wall, cluster_cpu = [], [], [], []
    for _ in range(args.repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        serial = _fit(case, args.starts)
        here_wall.append(time.perf_counter() - wall)
        here_cpu.append(time.process_time() - cpu)
    started = time.perf_counter()
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        startup_s = time.perf_counter() - started
        for _ in range(args.repeats):
            before = sum(client.run(time.process_time).values())
            wall, cpu = time.perf_counter(), time.process_time()
            with compute_on(ComputePlan(scheduler=client)):
                spread = _fit(case, args.starts)
            cluster_wall.append(time.perf_counter() - wall)
            cluster_cpu.append(time.process_time() - cpu + sum(client.run(time.process_time).values()) - before)
    equal = _record(serial) == _record(spread)
    figures = {
        "case": args.case,
        "starts": args.starts,
        "repeats": args.repeats,
        "ofv": serial.minus2ll,
        "records_equal": equal,
        "this_process": {"wall_s": statistics.median(here_wall), "cpu_s": statistics.median(here_cpu)},
        "local_cluster_2": {
            "startup_s": startup_s,
            "wall_s": statistics.median(cluster_wall),
            "cpu_s": statistics.median(cluster_cpu),
        },
        "load_average_1_5_15": {"before": load_before, "after": os.getloadavg()},
    }
    figures["wall_ratio_cluster_over_here"] = figures["local_cluster_2"]["wall_s"] / figures["this_process"]["wall_s"]
    table = Table(title=f"{args.case}: {args.starts} FOCE-I starts (s, medians of {args.repeats})")
    for column in ("where", "wall", "CPU", "start-up"):
        table.add_column(column)
    table.add_row("this process", f"{statistics.median(here_wall):.2f}", f"{statistics.median(here_cpu):.2f}", "")
    table.add_row(
        "LocalCluster(2)",
        f"{statistics.median(cluster_wall):.2f}",
        f"{statistics.median(cluster_cpu):.2f}",
        f"{startup_s:.2f}",
    )
    console.print(table)
    console.print(f"records equal: {equal}; load average {load_before} → {os.getloadavg()}")
    console.print(f"written to {write_results('population_starts', figures)}")
    if not equal:
        raise SystemExit("the cluster's record differs from this process's")


if __name__ == "__main__":
    main()
