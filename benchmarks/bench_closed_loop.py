"""Closed-loop design benchmark (issue #5): how many experiments until the twin is pinned down?

    .venv/bin/python -m benchmarks.bench_closed_loop [--seeds 20] [--cap 40] [--workers 2]

Setting where design matters: ``liver_chip``, only the parent drug measured, 4 samples per
experiment from a menu of schedules (early, spread, late), 15 % proportional noise, dose
levels 1–200 µM, estimating vmax, km, kon, koff (ps and the PD parameters fixed at the
truth). Each experiment is a fresh chip; after each one all data so far are fitted
(pooled MAP fit with a weak log-normal prior whose median is off the truth by a random
factor per seed, log SD 1). Starting from one low-dose experiment (1 µM, spread), count
the further experiments until every estimated parameter has CV (RSE) ≤ 10 %:

    (a) designed: Bayesian D-optimal over the current posterior (calibration.design.rank),
    (b) random choices from the same space,
    (c) a fixed design: dose levels low → high, cycled, with the spread schedule,
    (d) with metabolite data as well: random vs designed.

Runs that do not get there within ``cap`` further experiments count as cap + 1 (censored).
Also times "rank 200 candidates" (target ≤ 5 s).
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.common import write_results
from calibration.design.insilico import Experiment, lab_rows
from calibration.design.posterior import Posterior
from calibration.design.rank import Designer
from calibration.design.space import DesignSpace
from calibration.design.update import laplace_update, observed_from_rows

NAMES = ("vmax", "km", "kon", "koff")
TRUTH = {"ps": 0.5, "vmax": 2.0, "km": 10.0, "kon": 0.05, "koff": 0.02}
FIXED = {"ps": TRUTH["ps"]}
NOISE_CV = 0.15
TARGET_RSE = 10.0
PRIOR_LOG_SD = 1.0
DOSES = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0)
SCHEDULES = {"early": (0.25, 0.5, 1.0, 2.0), "spread": (1.0, 6.0, 24.0, 48.0), "late": (12.0, 24.0, 36.0, 48.0)}
FIRST = (1.0, "spread")
ARMS = {
    "a_designed": ("designed", False),
    "b_random": ("random", False),
    "c_fixed": ("fixed", False),
    "d_metabolite_random": ("random", True),
    "d_metabolite_designed": ("designed", True),
}


def space(metabolite: bool) -> DesignSpace:
    observables = ("drug_medium", "metabolite_medium") if metabolite else ("drug_medium",)
    return DesignSpace(
        DOSES,
        dict(SCHEDULES),
        (0.02,),
        ("next-chip",),
        observables,
        errors={o: {"prop_cv": NOISE_CV} for o in observables},
    )


def closed_loop(seed: int, arm: str, cap: int, draws: int = 8) -> dict:
    """One seed of one arm: further experiments needed (cap + 1 when not reached)."""
    strategy, metabolite = ARMS[arm]
    rng = np.random.default_rng(seed)  # the prior's offset, then the lab's noise
    prior = {n: (TRUTH[n] * float(np.exp(rng.uniform(-1, 1))), PRIOR_LOG_SD) for n in NAMES}
    choices = np.random.default_rng(10_000 + seed)  # the random arm's choices
    design_space = space(metabolite)
    observables = design_space.observables
    cv = {o: NOISE_CV for o in observables}
    data, path, start = [], [], None
    dose, schedule = FIRST
    started = time.perf_counter()
    for k in range(cap + 1):
        experiment = Experiment(dose, SCHEDULES[schedule], 0.02, observables)
        data.append(observed_from_rows(experiment, lab_rows(f"chip-{k}", experiment, TRUTH, NOISE_CV, rng)))
        path.append([dose, schedule])
        posterior = laplace_update("liver_chip", NAMES, prior, data, cv, fixed=FIXED, start=start)
        start = posterior.estimate
        if np.all(100 * posterior.sd_log <= TARGET_RSE):
            return {
                "seed": seed,
                "arm": arm,
                "further": k,
                "reached": True,
                "path": path,
                "wall_s": time.perf_counter() - started,
            }
        if strategy == "designed":  # from the current posterior only, never the truth
            best = Designer(design_space, posterior, draws=draws, seed=seed * 100 + k).ask(1)[0].candidate
            dose, schedule = best.dose_um, best.schedule
        elif strategy == "random":
            dose, schedule = float(choices.choice(DOSES)), str(choices.choice(list(SCHEDULES)))
        else:
            dose, schedule = DOSES[(k + 1) % len(DOSES)], "spread"
    return {
        "seed": seed,
        "arm": arm,
        "further": cap + 1,
        "reached": False,
        "path": path,
        "wall_s": time.perf_counter() - started,
    }


def time_ranking(repeats: int = 3) -> dict:
    """Rank 200 candidates (10 doses × 20 four-sample schedules) from a wide posterior."""
    grid = (0.25, 0.5, 1, 2, 4, 6, 8, 12, 18, 24, 30, 36, 42, 48)
    rng = np.random.default_rng(0)
    schedules = {f"s{i}": tuple(sorted(rng.choice(grid, 4, replace=False))) for i in range(20)}
    wide = DesignSpace(
        (1, 2, 5, 10, 20, 35, 50, 100, 150, 200), schedules, errors={"drug_medium": {"prop_cv": NOISE_CV}}
    )
    posterior = Posterior(
        "liver_chip",
        NAMES,
        np.log([TRUTH[n] for n in NAMES]),
        np.diag([0.5, 0.8, 0.4, 0.6]) ** 2,
        dict(FIXED),
        {"drug_medium.prop_cv": NOISE_CV},
    )
    timings = []
    for k in range(repeats):
        started = time.perf_counter()
        ranked = Designer(wide, posterior, seed=k).rank()
        timings.append(time.perf_counter() - started)
    return {
        "n_candidates": len(ranked),
        "draws": 16,
        "median_s": statistics.median(timings),
        "all_s": timings,
        "target_s": 5.0,
    }


def _summary(values: list[int]) -> dict:
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return {"median": float(median), "q1": float(q1), "q3": float(q3), "values": values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--cap", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--arms", default=",".join(ARMS))
    args = parser.parse_args()
    console = Console()
    ranking = time_ranking()
    console.print(f"rank {ranking['n_candidates']} candidates: {ranking['median_s']:.2f} s (target ≤ 5 s)")
    arms = args.arms.split(",")
    tasks = [(seed, arm, args.cap) for seed in range(args.seeds) for arm in arms]
    started = time.perf_counter()
    results = []
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [pool.submit(closed_loop, *task) for task in tasks]
        for future in as_completed(futures):  # progress: one line per finished run
            results.append(future.result())
            r = results[-1]
            console.print(
                f"[{len(results)}/{len(tasks)}] seed {r['seed']} {r['arm']}: {r['further']} further "
                f"experiment(s){'' if r['reached'] else ' (censored)'} in {r['wall_s']:.0f} s"
            )
    wall_s = time.perf_counter() - started
    table = Table(
        title=f"further experiments to CV ≤ {TARGET_RSE:g} % (median over {args.seeds} seeds; "
        f"cap {args.cap}, censored = cap + 1)"
    )
    for column in ("arm", "median", "IQR", "reached"):
        table.add_column(column)
    summary = {}
    for arm in arms:
        runs = [r for r in results if r["arm"] == arm]
        summary[arm] = {
            **_summary([r["further"] for r in runs]),
            "reached": sum(r["reached"] for r in runs),
            "paths": [r["path"] for r in runs],
            "wall_s": [r["wall_s"] for r in runs],
        }
        s = summary[arm]
        table.add_row(arm, f"{s['median']:g}", f"{s['q1']:g}–{s['q3']:g}", f"{s['reached']}/{len(runs)}")
    console.print(table)
    figures = {
        "ranking_200": ranking,
        "arms": summary,
        "seeds": args.seeds,
        "cap": args.cap,
        "wall_s": wall_s,
        "setting": {
            "truth": TRUTH,
            "estimated": NAMES,
            "noise_cv": NOISE_CV,
            "doses_um": DOSES,
            "schedules": SCHEDULES,
            "first": FIRST,
            "prior_log_sd": PRIOR_LOG_SD,
            "target_rse_percent": TARGET_RSE,
        },
    }
    if "a_designed" in summary and "b_random" in summary:
        figures["ratio_a_over_b"] = summary["a_designed"]["median"] / summary["b_random"]["median"]
        console.print(f"(a)/(b) = {figures['ratio_a_over_b']:.2f} (target ≤ 0.5)   wall {wall_s:.0f} s")
    write_results("closed_loop", figures)


if __name__ == "__main__":
    main()
