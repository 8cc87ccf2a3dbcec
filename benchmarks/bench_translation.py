"""Virtual control arms benchmark: a 10,000-trial PROCOVA simulation, vectorised vs a per-trial loop.

    .venv/bin/python -m benchmarks.bench_translation [--trials 10000] [--loop-trials 10000]

Design: 100 + 100 subjects, effect 4, SD 10, ρ = 0.6 (examples/trials/procova_liver_enzyme.toml).
Both sides draw the data and run both analyses (unadjusted and PROCOVA ANCOVA):

- vectorised: ``calibration.trial.simulate_trials`` (numpy over trials, closed-form OLS);
- per-trial loop: each trial drawn with numpy and fitted with two statsmodels OLS calls —
  what one would write with the library alone.

Same run, wall (perf_counter) and CPU (process_time) seconds; the vectorised side is the
median of 3 repeats, the loop runs once (``--loop-trials`` fewer than ``--trials`` is
extrapolated linearly per trial: the loop has no shared work). Answers are compared on the
same arrays for 200 trials (largest |difference| of effect and SE).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import statsmodels.api as sm
from rich.console import Console
from rich.table import Table

from benchmarks.common import write_results
from calibration.trial import analyse_arms, simulate_trials

DESIGN = dict(n_treatment=100, n_control=100, effect=4.0, sd=10.0, correlation=0.6)


def _timed(work) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = work()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def _fit_one(y_t, y_c, m_t, m_c):
    y = np.concatenate([y_t, y_c])
    t = np.r_[np.ones(len(y_t)), np.zeros(len(y_c))]
    m = np.concatenate([m_t, m_c])
    raw = sm.OLS(y, np.column_stack([np.ones_like(y), t])).fit()
    adj = sm.OLS(y, np.column_stack([np.ones_like(y), t, m])).fit()
    return raw.params[1], raw.bse[1], raw.pvalues[1], adj.params[1], adj.bse[1], adj.pvalues[1]


def run_loop(n_trials: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rho, nt, nc = DESIGN["correlation"], DESIGN["n_treatment"], DESIGN["n_control"]
    out = np.empty((n_trials, 6))
    for i in range(n_trials):
        m_t, m_c = rng.standard_normal(nt), rng.standard_normal(nc)
        y_t = DESIGN["effect"] + DESIGN["sd"] * (rho * m_t + np.sqrt(1 - rho**2) * rng.standard_normal(nt))
        y_c = DESIGN["sd"] * (rho * m_c + np.sqrt(1 - rho**2) * rng.standard_normal(nc))
        out[i] = _fit_one(y_t, y_c, m_t, m_c)
    return out


def agreement(n_trials: int = 200) -> float:
    rng = np.random.default_rng(7)
    e_t, e_c, m_t, m_c = (rng.standard_normal((n_trials, DESIGN[k])) for k in ("n_treatment", "n_control") * 2)
    y_t, y_c = 4.0 + 0.6 * m_t + 0.8 * e_t, 0.6 * m_c + 0.8 * e_c
    raw, adj = analyse_arms(y_t, y_c, m_t, m_c)
    worst = 0.0
    for i in range(n_trials):
        ref = _fit_one(y_t[i], y_c[i], m_t[i], m_c[i])
        ours = (raw.effect[i], raw.se[i], raw.p_value[i], adj.effect[i], adj.se[i], adj.p_value[i])
        worst = max(worst, max(abs(a - b) for a, b in zip(ours, ref)))
    return worst


def run(trials: int = 10_000, loop_trials: int = 10_000) -> dict:
    vec = [_timed(lambda: simulate_trials(**DESIGN, n_trials=trials, seed=1)) for _ in range(3)]
    vec_wall, vec_cpu = statistics.median(v[0] for v in vec), statistics.median(v[1] for v in vec)
    power = vec[0][2].procova.rejection_rate(0.05)
    loop_wall, loop_cpu, loop_out = _timed(lambda: run_loop(loop_trials))
    scale = trials / loop_trials
    loop_power = float(np.mean(loop_out[:, 5] < 0.05))
    return {
        "design": DESIGN,
        "trials": trials,
        "loop_trials_run": loop_trials,
        "vectorised": {"wall_s": vec_wall, "cpu_s": vec_cpu, "procova_power": power},
        "per_trial_statsmodels_loop": {
            "wall_s": loop_wall * scale,
            "cpu_s": loop_cpu * scale,
            "extrapolated": loop_trials != trials,
            "procova_power": loop_power,
        },
        "wall_ratio": loop_wall * scale / vec_wall,
        "cpu_ratio": loop_cpu * scale / vec_cpu,
        "max_abs_difference_200_trials": agreement(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--loop-trials", type=int, default=10_000)
    args = parser.parse_args()
    figures = run(args.trials, args.loop_trials)
    table = Table(title=f"PROCOVA simulation, {figures['trials']:,} trials of 100 + 100 (ρ 0.6)")
    for column in ("engine", "wall s", "CPU s", "PROCOVA power"):
        table.add_column(column)
    for name, label in (
        ("vectorised", "numpy, vectorised over trials"),
        ("per_trial_statsmodels_loop", "per-trial loop, statsmodels OLS"),
    ):
        f = figures[name]
        table.add_row(label, f"{f['wall_s']:.3f}", f"{f['cpu_s']:.3f}", f"{f['procova_power']:.3f}")
    console = Console()
    console.print(table)
    console.print(
        f"loop / vectorised: {figures['wall_ratio']:.0f}× wall, {figures['cpu_ratio']:.0f}× CPU; "
        f"largest |difference| on 200 shared trials {figures['max_abs_difference_200_trials']:.1e}"
    )
    console.print(f"written: {write_results('translation', figures)}")


if __name__ == "__main__":
    main()
