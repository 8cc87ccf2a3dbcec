"""`chiptwin demo --no-panel` wall and CPU time, before and after (issue #11 item 4).

    git worktree add /tmp/chiptwin-before <commit>
    .venv/bin/python -m benchmarks.bench_demo --before /tmp/chiptwin-before [--repeats 3] [--seed 7]
    git worktree remove /tmp/chiptwin-before

Each run is a fresh process (``python -m ui.cli.run demo --no-panel --json``) on a fresh SQLite
file, the checkout first on PYTHONPATH; wall time is measured around the process, CPU time is
the child's user + system time (``resource.getrusage``). Reported: medians, the machine's load
average beside them, the run's state and its last round's estimates (to compare seeds and runs).
The "after" side's last run has two more processes spinning on the CPU beside it (``--no-busy``:
not), and ``after.same_estimates_3sf`` says whether every run's last-round estimates agree to 3
significant digits (within half a unit of the third digit): the demo's reproducibility under load.
Not part of the default test suite: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import write_results

HERE = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class DemoRun:
    wall_s: float
    cpu_s: float
    state: str
    load_1min: float
    estimates: dict


def run_busy(checkout: Path, seed: int | None, timeout_s: float) -> DemoRun:
    """``run_once`` beside two processes that keep both cores busy."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        return run_once(checkout, seed, timeout_s)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def same_estimates(runs: list[DemoRun]) -> bool:
    """Every run's last-round estimates agree with the first's to 3 significant digits."""
    first = runs[0].estimates

    def close(a: dict, b: dict) -> bool:
        return a.keys() == b.keys() and all(
            math.isclose(a[c][n]["estimate"], b[c][n]["estimate"], rel_tol=5e-4) for c in a for n in a[c]
        )

    return bool(first) and all(close(first, r.estimates) for r in runs[1:])


def run_once(checkout: Path, seed: int | None, timeout_s: float) -> DemoRun:
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as folder:
        command = [sys.executable, "-m", "ui.cli.run", "demo", "--no-panel", "--json", "--db", f"{folder}/demo.db"]
        if seed is not None:
            command += ["--seed", str(seed)]
        env = {**os.environ, "PYTHONPATH": str(checkout)}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        try:
            done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=timeout_s)
            stdout, state = done.stdout, f"exit {done.returncode}"
        except subprocess.TimeoutExpired:  # recorded as such (a hung run is a result too), not a crash
            stdout, state = "", f"timeout after {timeout_s:g} s"
        wall_s = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = json.loads(stdout) if stdout.strip() else {"state": state}
    last = summary.get("per_round") or [{}]
    return DemoRun(
        wall_s,
        (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        summary.get("state", "?"),
        os.getloadavg()[0],
        last[-1].get("estimates", {}),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="a checkout of the commit to compare with")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout-s", type=float, default=900.0)
    parser.add_argument("--no-busy", action="store_true", help="no CPU hogs beside the after side's last run")
    args = parser.parse_args()
    sides = {"after": (HERE, args.seed)}
    if args.before is not None:
        sides = {"before": (args.before, None), **sides}  # the old demo has no --seed
    results = {}
    for side, (checkout, seed) in sides.items():
        busy_last = side == "after" and not args.no_busy and args.repeats > 1
        runs = [
            (run_busy if busy_last and k == args.repeats - 1 else run_once)(checkout, seed, args.timeout_s)
            for k in range(args.repeats)
        ]
        results[side] = {
            "last_run_busy": busy_last,
            "same_estimates_3sf": same_estimates(runs),
            "median_wall_s": statistics.median(r.wall_s for r in runs),
            "median_cpu_s": statistics.median(r.cpu_s for r in runs),
            "states": [r.state for r in runs],
            "load_1min": [round(r.load_1min, 2) for r in runs],
            "runs": [r.__dict__ for r in runs],
        }
        print(
            f"{side}: wall {results[side]['median_wall_s']:.1f} s, CPU {results[side]['median_cpu_s']:.1f} s "
            f"(medians of {args.repeats}); states {results[side]['states']}; load {results[side]['load_1min']}; "
            f"same estimates to 3 s.f.: {results[side]['same_estimates_3sf']}"
        )
    write_results("demo", results)


if __name__ == "__main__":
    main()
