"""Command-line start-up: `chiptwin --help` (and a command's --help) before and after the lazy CLI.

    .venv/bin/python -m benchmarks.bench_cli [--baseline REF] [--repeats 9]

Issue #10's target: `chiptwin --help` within 0.3 s of a bare `python -c pass` and within 60 MB
of peak RSS. Side by side in one run: bare Python, this checkout, and the baseline layout (by
default c00951b, the last commit before the reorganisation, checked out into a temporary git
worktree and put first on PYTHONPATH, so both run on the same interpreter and libraries).
Each figure is the median over ``--repeats`` runs of wall time, CPU time (user + system, from
``os.wait4``) and the child's peak RSS.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.common import write_results

REPO = Path(__file__).resolve().parents[1]
BASELINE = "c00951b"  # last layout before issue #10 (ui/cli.py imported every command's stack)


@dataclass(frozen=True)
class Start:
    wall_s: float
    cpu_s: float
    peak_rss_mb: float


def _one(argv: list[str], env: dict[str, str], cwd: Path) -> Start:
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {child.returncode}")
    return Start(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def measure(argv: list[str], env: dict[str, str], repeats: int, cwd: Path = REPO) -> Start:
    """Median start-up of ``argv``; ``cwd`` decides which checkout ``python -m`` imports from."""
    _one(argv, env, cwd)  # warm the file cache: every variant is measured warm
    runs = [_one(argv, env, cwd) for _ in range(repeats)]
    return Start(*(statistics.median(getattr(r, f) for r in runs) for f in ("wall_s", "cpu_s", "peak_rss_mb")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=BASELINE, help="git ref of the layout to compare with")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    env = dict(os.environ)
    python = sys.executable
    rows: dict[str, Start] = {"python -c pass": measure([python, "-c", "pass"], env, args.repeats)}
    for label, argv in (("chiptwin --help", ["--help"]), ("chiptwin fit --help", ["fit", "--help"])):
        rows[f"{label} (now)"] = measure([python, "-m", "ui.cli.app", *argv], env, args.repeats)
    with tempfile.TemporaryDirectory() as folder:
        tree = Path(folder) / "baseline"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(tree), args.baseline], check=True
        )
        try:
            old_env = {**env, "PYTHONPATH": str(tree)}
            for label, argv in (("chiptwin --help", ["--help"]), ("chiptwin fit --help", ["fit", "--help"])):
                rows[f"{label} ({args.baseline})"] = measure(
                    [python, "-m", "ui.cli", *argv], old_env, args.repeats, cwd=tree
                )
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=True)
    bare = rows["python -c pass"]
    table = Table(title=f"command-line start-up, median of {args.repeats} (shared, noisy 2-core machine)")
    for column in ("command", "wall (s)", "CPU (s)", "peak RSS (MB)", "wall over bare Python (s)"):
        table.add_column(column, justify="left" if column == "command" else "right")
    for label, r in rows.items():
        table.add_row(
            label, f"{r.wall_s:.3f}", f"{r.cpu_s:.3f}", f"{r.peak_rss_mb:.0f}", f"{r.wall_s - bare.wall_s:.3f}"
        )
    Console().print(table)
    now, old = rows["chiptwin --help (now)"], rows[f"chiptwin --help ({args.baseline})"]
    verdict = {
        "over_bare_s": now.wall_s - bare.wall_s,
        "target_over_bare_s": 0.3,
        "target_rss_mb": 60,
        "speed_up_wall": old.wall_s / now.wall_s,
        "speed_up_cpu": old.cpu_s / now.cpu_s,
    }
    Console().print(
        f"--help: {verdict['over_bare_s']:.3f} s over bare Python (target ≤ 0.3 s), "
        f"{now.peak_rss_mb:.0f} MB (target ≤ 60 MB); {verdict['speed_up_wall']:.1f}× faster wall, "
        f"{verdict['speed_up_cpu']:.1f}× less CPU than {args.baseline}"
    )
    write_results("bench_cli", {"rows": {k: r.__dict__ for k, r in rows.items()}, **verdict})


if __name__ == "__main__":
    main()
