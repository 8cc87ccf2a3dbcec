"""Population benchmark: wall time and peak memory of a 1,000,000-patient exposure summary.

    .venv/bin/python -m benchmarks.bench_population [--n 1000000] [--with-dask]

Target (issue #3): peak resident memory ≤ 2 GB for 1e6 patients. Each configuration runs
in a fresh subprocess so its peak RSS (``ru_maxrss`` of the process, and of its pool
workers once they have exited) is its own and not the benchmark driver's.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from rich.console import Console
from rich.table import Table

from benchmarks.common import write_results

TARGET_PEAK_MB = 2048.0
DRUG, REGIMEN, TARGET = "example_chip_compound", "100 mg q12h x14 oral", (0.3, 1.0)


def _child(n: int, workers: int, dask: bool) -> None:
    """Run one population in this process and print its figures as JSON (used via subprocess)."""
    from twin.drugs import load_drug
    from twin.patients import Target, parse_regimen, run_population

    options: dict = {"max_workers": workers}
    cluster = None
    if dask:
        import distributed

        cluster = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=False, dashboard_address=None
        )
        options = {"dask": cluster.scheduler_address}
    start = time.perf_counter()
    summary = run_population(
        load_drug(DRUG), parse_regimen(REGIMEN), n, seed=1, target=Target("auc_tau_ss", *TARGET), **options
    )
    wall_s = time.perf_counter() - start
    if cluster is not None:
        cluster.close()
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB
    child_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(
        json.dumps(
            {
                "n": n,
                "wall_s": wall_s,
                "patients_per_s": n / wall_s,
                "peak_rss_mb": kib / 1024,
                "peak_worker_rss_mb": child_kib / 1024,
                "pta": summary.pta,
                "auc_tau_ss_median": summary.accumulator.summaries["auc_tau_ss"].quantile(0.5),
            }
        )
    )


def _measure(n: int, workers: int, dask: bool) -> dict:
    command = [
        sys.executable,
        "-m",
        "benchmarks.bench_population",
        "--child",
        "--n",
        str(n),
        "--workers",
        str(workers),
    ] + (["--with-dask"] if dask else [])
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--with-dask", action="store_true", help="also run on a local Dask cluster")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.n, args.workers, args.with_dask)
        return
    configurations = {
        "in-process (1 worker)": (1, False),
        f"process pool ({args.workers} workers)": (args.workers, False),
    }
    if args.with_dask:
        configurations[f"Dask LocalCluster ({args.workers} workers, threads)"] = (args.workers, True)
    console = Console()
    figures = {}
    for label, (workers, dask) in configurations.items():
        console.print(f"running {label} …")
        figures[label] = _measure(args.n, workers, dask)
    table = Table(title=f"{args.n:,} virtual patients — {DRUG}, {REGIMEN}")
    for column in ("executor", "wall (s)", "patients/s", "peak RSS (MB)", "peak child-process RSS (MB)", "PTA"):
        table.add_column(column)
    for label, f in figures.items():
        table.add_row(
            label,
            f"{f['wall_s']:.2f}",
            f"{f['patients_per_s']:,.0f}",
            f"{f['peak_rss_mb']:.0f}",
            f"{f['peak_worker_rss_mb']:.0f}",
            f"{f['pta']:.4f}",
        )
    console.print(table)
    worst = max(max(f["peak_rss_mb"], f["peak_worker_rss_mb"]) for f in figures.values())
    verdict = "meets" if worst <= TARGET_PEAK_MB else "MISSES"
    console.print(f"largest peak RSS {worst:.0f} MB: {verdict} the {TARGET_PEAK_MB:.0f} MB target")
    path = write_results(
        "population", {"n": args.n, "target_peak_mb": TARGET_PEAK_MB, "largest_peak_rss_mb": worst, "runs": figures}
    )
    console.print(f"written to {path}")


if __name__ == "__main__":
    main()
