"""Chip benchmark: 1,000 liver chips, 72 h with events — batched Rodas4 vs a per-chip solve_ivp loop.

    .venv/bin/python -m benchmarks.bench_chip [--chips 1000] [--loop-subset 20]

Every chip has its own parameters (log-normal around the defaults, 40 % spread) and its own
schedule: a dose at 0–2 h, a sample 0.5–3 h later, a second dose near 24 h, samples at
30 and 50 h, a media change at 48 h and a last sample at 71 h; outputs hourly. The loop
baseline (``simulate_chip``: scipy solve_ivp, analytic Jacobian, restarted at each event)
is timed on a subset of chips and extrapolated linearly to all of them — per-chip solves
are independent, so their cost is additive. Both paths use rtol 1e-8, atol 1e-10.
Target (issue brief): batched ≥ 10× the fastest loop.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.common import write_results
from twin.chip import ChipRun, Dose, MediaChange, Sample, simulate_chip, simulate_chips
from twin.chip.liver import LIVER_PARAMETERS

OBSERVABLES = ("drug_medium", "metabolite_medium", "oxygen", "viability")


def make_chips(n: int, seed: int = 1) -> list[ChipRun]:
    rng = np.random.default_rng(seed)
    chips = []
    for _ in range(n):
        params = {p.name: p.default * float(np.exp(rng.normal(0.0, 0.4))) for p in LIVER_PARAMETERS}
        first = float(rng.uniform(0.0, 2.0))
        events = [
            Dose(first, float(rng.uniform(5, 200)), 0.05),
            Sample(first + float(rng.uniform(0.5, 3)), 0.05),
            Dose(24.0 + float(rng.uniform(-1, 1)), float(rng.uniform(5, 200)), 0.05),
            Sample(30.0, 0.05),
            MediaChange(48.0, 1.0, float(rng.uniform(0, 20))),
            Sample(50.0, 0.05),
            Sample(71.0, 0.05),
        ]
        chips.append(ChipRun(params, events))
    return chips


def max_rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a − b| relative to the observable's own scale in that chip (robust near zero)."""
    scale = np.maximum(np.abs(b).max(axis=-1, keepdims=True), 1e-12)
    return float(np.max(np.abs(a - b) / scale))


def time_loop(chips: list[ChipRun], times: np.ndarray, method: str) -> tuple[float, dict]:
    start = time.perf_counter()
    runs = [simulate_chip(c.params, c.events, times, method=method) for c in chips]
    seconds = time.perf_counter() - start
    return seconds, {k: np.array([r[k] for r in runs]) for k in OBSERVABLES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chips", type=int, default=1000)
    parser.add_argument("--loop-subset", type=int, default=20)
    args = parser.parse_args()
    chips, times = make_chips(args.chips), np.arange(0.0, 73.0)
    subset = chips[: args.loop_subset]

    start = time.perf_counter()
    batched = simulate_chips(chips, times)
    batched_s = time.perf_counter() - start

    figures: dict = {
        "chips": args.chips,
        "hours": 72,
        "events_per_chip": 7,
        "outputs_per_chip": len(times),
        "rtol": 1e-8,
        "atol": 1e-10,
        "batched_seconds": batched_s,
        "loops": {},
    }
    for method in ("BDF", "LSODA"):
        seconds, looped = time_loop(subset, times, method)
        per_chip = seconds / len(subset)
        figures["loops"][method] = {
            "subset_chips": len(subset),
            "subset_seconds": seconds,
            "extrapolated_seconds": per_chip * args.chips,
            "ratio": per_chip * args.chips / batched_s,
            "max_rel_diff": max(max_rel_diff(batched[k][: len(subset)], looped[k]) for k in OBSERVABLES),
        }
    best = min(figures["loops"].values(), key=lambda loop: loop["extrapolated_seconds"])
    figures["ratio_vs_fastest_loop"] = best["ratio"]
    figures["target_met"] = best["ratio"] >= 10.0

    table = Table(
        title=f"liver_chip: {args.chips} chips × 72 h, 7 events each (loop timed on {len(subset)}, extrapolated)"
    )
    for column in ("path", "seconds", "× batched", "max rel diff vs batched"):
        table.add_column(column)
    table.add_row("batched Rodas4 (simulate_chips)", f"{batched_s:.2f}", "1", "—")
    for method, loop in figures["loops"].items():
        table.add_row(
            f"loop of solve_ivp {method} (simulate_chip)",
            f"{loop['extrapolated_seconds']:.1f}",
            f"{loop['ratio']:.0f}",
            f"{loop['max_rel_diff']:.1e}",
        )
    Console().print(table)
    path = write_results("chip", figures)
    print(f"ratio vs the fastest loop: {best['ratio']:.0f}× (target ≥ 10×) — written to {path}")


if __name__ == "__main__":
    main()
