"""Virtual control arms and virtual chips: a 10,000-trial PROCOVA simulation, vectorised vs a per-trial
loop; 1,000 virtual chips × a 72 h protocol check, batched vs a per-chip loop.

    .venv/bin/python -m benchmarks.bench_translation [--trials 10000] [--loop-trials 10000]
                                                     [--virtual-chips 1000] [--loop-chips 25] [--only trials|chips]

Virtual chips: ``chiptwin protocol check examples/protocols/three_day_dosing.toml --rig
examples/rigs/liver4.toml --virtual-chips N`` (four chips, 72 h, doses, 24 samples and 6 media
changes per chip; N virtual copies of each chip, so 4·N chips), through
``protocols.language.virtual_chips`` with its two engines on the same draws:

- batched: ``twin.chip.simulate_chips`` (vectorised Rodas4 over every chip at once);
- per-chip loop: ``twin.chip.simulate_chip`` (scipy BDF) once per chip, the dry run's own
  engine, at the same tolerances — run on ``--loop-chips`` copies and extrapolated linearly
  per chip. Answers compared on those copies (largest difference of a probability, and of a
  peak or sample concentration percentile relative to its value);
- batched, split over 2 processes (``virtual_chips.pooled(2)``): the same answers, CPU
  counting the workers'.

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

PROTOCOL_72H = "examples/protocols/three_day_dosing.toml"
RIG = "examples/rigs/liver4.toml"

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


def _per_chip_loop(runs, times_h):
    from protocols.language.virtual_chips import ATOL, OBSERVABLES, RTOL
    from twin.chip import simulate_chip

    rows = [simulate_chip(r.params, r.events, times_h, r.constants, OBSERVABLES, rtol=RTOL, atol=ATOL) for r in runs]
    return {name: np.array([row[name] for row in rows]) for name in OBSERVABLES}


def _answers(report) -> tuple[list[float], list[float]]:
    probabilities = [report.p_run_stops]
    spreads = []
    for chip in report.chips:
        probabilities += [chip.p_over_limit, chip.p_medium_runs_out, *chip.p_interlock.values()]
        for s in [chip.peak_concentration] + [r.spread for r in chip.readouts if r.name == "drug_medium"]:
            spreads += [s.p05, s.p50, s.p95]
    return probabilities, spreads


def run_virtual_chips(n_chips: int = 1000, loop_chips: int = 25, seed: int = 0) -> dict:
    from protocols.language.api import load_protocol
    from protocols.language.rig_view import load_rig_view
    from protocols.language.virtual_chips import pooled, virtual_chips

    rig = load_rig_view(RIG)
    protocol = load_protocol(PROTOCOL_72H, rig)
    n_rig_chips = len(protocol.chips)
    batched = virtual_chips(protocol, rig, n_chips, seed=seed)
    wall, cpu = batched.wall_s, batched.cpu_s
    two = virtual_chips(protocol, rig, n_chips, seed=seed, simulator=pooled(2))  # CPU counts the workers'
    loop_wall, loop_cpu, looped = _timed(
        lambda: virtual_chips(protocol, rig, loop_chips, seed=seed, simulator=_per_chip_loop)
    )
    same = virtual_chips(protocol, rig, loop_chips, seed=seed)  # the batch on the loop's draws
    (p_loop, peak_loop), (p_same, peak_same) = _answers(looped), _answers(same)
    scale = n_chips / loop_chips
    return {
        "protocol": PROTOCOL_72H,
        "duration_h": batched.duration_h,
        "virtual_chips_per_rig_chip": n_chips,
        "chips_simulated": n_chips * n_rig_chips,
        "batched": {"wall_s": wall, "cpu_s": cpu, "p_run_stops": batched.p_run_stops},
        "batched_2_processes": {"wall_s": two.wall_s, "cpu_s": two.cpu_s, "same_answers": two.chips == batched.chips},
        "per_chip_loop": {
            "wall_s": loop_wall * scale,
            "cpu_s": loop_cpu * scale,
            "extrapolated_from_chips": loop_chips * n_rig_chips,
        },
        "wall_ratio": loop_wall * scale / wall,
        "cpu_ratio": loop_cpu * scale / cpu,
        "max_probability_difference": max(abs(a - b) for a, b in zip(p_loop, p_same)),
        "max_relative_spread_difference": max(abs(a - b) / max(abs(b), 1e-9) for a, b in zip(peak_loop, peak_same)),
    }


def _print_chips(figures: dict, console: Console) -> None:
    table = Table(
        title=(
            f"protocol check, {figures['virtual_chips_per_rig_chip']:,} virtual copies of each chip × "
            f"{figures['duration_h']:g} h ({figures['chips_simulated']:,} chips)"
        )
    )
    for column in ("engine", "wall s", "CPU s"):
        table.add_column(column)
    table.add_row(
        "batched (vectorised Rodas4)", f"{figures['batched']['wall_s']:.2f}", f"{figures['batched']['cpu_s']:.2f}"
    )
    two = figures["batched_2_processes"]
    table.add_row("batched, split over 2 processes", f"{two['wall_s']:.2f}", f"{two['cpu_s']:.2f}")
    loop = figures["per_chip_loop"]
    table.add_row(
        f"per-chip loop (scipy BDF), from {loop['extrapolated_from_chips']} chips",
        f"{loop['wall_s']:.1f}",
        f"{loop['cpu_s']:.1f}",
    )
    console.print(table)
    console.print(
        f"loop / batched: {figures['wall_ratio']:.0f}× wall, {figures['cpu_ratio']:.0f}× CPU; on the same draws the "
        f"largest difference of a probability is {figures['max_probability_difference']:.3g}, of a peak or sample "
        f"concentration percentile {figures['max_relative_spread_difference']:.1e} (relative)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--loop-trials", type=int, default=10_000)
    parser.add_argument("--virtual-chips", type=int, default=1000)
    parser.add_argument("--loop-chips", type=int, default=25)
    parser.add_argument("--only", choices=("trials", "chips"))
    args = parser.parse_args()
    console = Console()
    chips = None if args.only == "trials" else run_virtual_chips(args.virtual_chips, args.loop_chips)
    if args.only == "chips":
        assert chips is not None
        _print_chips(chips, console)
        console.print(f"written: {write_results('translation_chips', chips)}")
        return
    figures = run(args.trials, args.loop_trials)
    if chips is not None:
        figures["virtual_chips"] = chips
    table = Table(title=f"PROCOVA simulation, {figures['trials']:,} trials of 100 + 100 (ρ 0.6)")
    for column in ("engine", "wall s", "CPU s", "PROCOVA power"):
        table.add_column(column)
    for name, label in (
        ("vectorised", "numpy, vectorised over trials"),
        ("per_trial_statsmodels_loop", "per-trial loop, statsmodels OLS"),
    ):
        f = figures[name]
        table.add_row(label, f"{f['wall_s']:.3f}", f"{f['cpu_s']:.3f}", f"{f['procova_power']:.3f}")
    console.print(table)
    if chips is not None:
        _print_chips(chips, console)
    console.print(
        f"loop / vectorised: {figures['wall_ratio']:.0f}× wall, {figures['cpu_ratio']:.0f}× CPU; "
        f"largest |difference| on 200 shared trials {figures['max_abs_difference_200_trials']:.1e}"
    )
    console.print(f"written: {write_results('translation', figures)}")


if __name__ == "__main__":
    main()
