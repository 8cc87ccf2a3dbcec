"""PK benchmark: the exact batched solver vs a per-subject solve_ivp (LSODA) loop.

    .venv/bin/python -m benchmarks.bench_pk [--subjects 10000] [--reference-subjects 200]

Target (issue #3): 10,000 subjects × 100 output times with repeated dosing (100 mg q12h × 6,
one dose record with ADDL 5) ≥ 100× faster than solve_ivp LSODA at rtol 1e-8 per subject,
with the same answers. The loop is timed on a subset of subjects and extrapolated linearly
per subject (it has no shared work), and answers are compared on that subset. Our time
includes everything from the prepared dataset: parameter resolution, dosing schedule, solve.

Other engines (libroadrunner, …) plug in through ``run(extra_engines=...)``: a callable
(data, model, params) -> predictions per row, timed and compared on the same subset.

Repeated prediction for fitting (issue: a phenobarbital population fit ≤ 5 s): ms per
prediction of a reference dataset's observed rows for new parameters, as a population fit
calls it thousands of times — the lockstep solver (``predict_resolved``) before, the
superposition terms built once (``twin.pk.fast.Superposition``, what ``NonmemProblem`` uses)
after. Datasets from ../shared/reference/pk (skipped when missing).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from scipy.integrate import solve_ivp

from benchmarks.common import median_seconds, write_results
from benchmarks.roadrunner_engine import engines as roadrunner_engines
from twin.catalogue import get_model
from twin.dataset import prepare_dataset
from twin.pk import predict
from twin.pk.fast import Superposition
from twin.pk.params import resolve_parameters
from twin.pk.schedule import build_schedule
from twin.pk.simulate import predict_resolved
from twin.pk.systems import rate_matrix

Engine = Callable[[pd.DataFrame, str, Mapping[str, object]], np.ndarray]
DOSE_MG, INTERVAL_H, N_DOSES = 100.0, 12.0, 6
OUTPUT_TIMES_H = np.linspace(0.5, 96.0, 100)
TYPICAL = {
    "oral_1cpt": {"ka": 1.0, "cl": 4.0, "v": 70.0},
    "oral_2cpt": {"ka": 1.0, "cl": 4.0, "v1": 30.0, "q": 6.0, "v2": 80.0},
}
LSODA = {"method": "LSODA", "rtol": 1e-8, "atol": 1e-10}


def population(model: str, n_subjects: int, seed: int = 1) -> tuple[pd.DataFrame, dict[str, str]]:
    """One dose record (ADDL 5) and 100 observations per subject; 30 % log-normal BSV per parameter."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n_subjects + 1)
    per_subject = {
        name: value * np.exp(0.3 * rng.standard_normal(n_subjects)) for name, value in TYPICAL[model].items()
    }
    n_rows = 1 + len(OUTPUT_TIMES_H)
    frame = pd.DataFrame(
        {
            "ID": np.repeat(ids, n_rows),
            "TIME": np.tile(np.r_[0.0, OUTPUT_TIMES_H], n_subjects),
            "AMT": np.tile(np.r_[DOSE_MG, np.zeros(len(OUTPUT_TIMES_H))], n_subjects),
            "EVID": np.tile(np.r_[1, np.zeros(len(OUTPUT_TIMES_H))], n_subjects),
            "CMT": np.tile(np.r_[1, 2 * np.ones(len(OUTPUT_TIMES_H))], n_subjects),
            "II": np.tile(np.r_[INTERVAL_H, np.zeros(len(OUTPUT_TIMES_H))], n_subjects),
            "ADDL": np.tile(np.r_[N_DOSES - 1, np.zeros(len(OUTPUT_TIMES_H))], n_subjects),
        }
    )
    for name, values in per_subject.items():
        frame[name.upper()] = np.repeat(values, n_rows)
    return frame, {name: f"@{name.upper()}" for name in TYPICAL[model]}


def lsoda_loop(data: pd.DataFrame, model: str, params: Mapping[str, object]) -> np.ndarray:
    """The baseline: each subject integrated alone, restarted at each dose (exact bolus times)."""
    data = data.reset_index(drop=True)  # positions, whatever the row labels
    out = np.full(len(data), np.nan)
    volume = "v" if "v" in TYPICAL[model] else "v1"
    dose_times = np.arange(N_DOSES) * INTERVAL_H
    for _, rows in data.groupby("ID", sort=False):
        p = {name: np.array([rows[str(column)[1:]].iloc[0]]) for name, column in params.items()}
        a = rate_matrix(model, p)[0]
        x = np.zeros(a.shape[0])
        times = rows["TIME"].to_numpy()
        edges = np.r_[dose_times, times.max()]
        for start, stop in zip(edges[:-1], edges[1:]):
            x[0] += DOSE_MG
            inside = (times > start) & (times <= stop) & (rows["EVID"].to_numpy() == 0)
            t_eval = np.unique(np.r_[times[inside], stop])  # the segment's end carries the state on
            sol = solve_ivp(lambda t, y: a @ y, (start, stop), x, t_eval=t_eval, jac=lambda t, y: a, **LSODA)
            out[rows.index[inside]] = sol.y[1, np.searchsorted(t_eval, times[inside])] / p[volume][0]
            x = sol.y[:, -1].copy()
    return out


def max_relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    """max |a − b| / |b| over observations (floor: 1e-9 × the largest value, for values near 0)."""
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-9 * np.abs(b).max())))


def bench_model(model: str, n_subjects: int, n_reference: int, extra_engines: Mapping[str, Engine]) -> dict:
    data, params = population(model, n_subjects)
    prepared = prepare_dataset(data)
    spec = get_model(model)
    ours = {}
    ours_s = median_seconds(lambda: ours.setdefault("ipred", predict(prepared, spec, params)), repeats=3)
    subset = prepared[prepared["ID"] <= n_reference]
    observed = (subset["EVID"] == 0).to_numpy()
    engines = {"solve_ivp LSODA loop": lsoda_loop, **extra_engines}
    figures = {"subjects": n_subjects, "output_times": len(OUTPUT_TIMES_H), "ours_s": ours_s, "engines": {}}
    for name, engine in engines.items():
        start = time.perf_counter()
        theirs = engine(subset, model, params)
        per_subject = (time.perf_counter() - start) / n_reference
        figures["engines"][name] = {
            "timed_subjects": n_reference,
            "s_per_subject": per_subject,
            "extrapolated_s": per_subject * n_subjects,
            "speedup": per_subject * n_subjects / ours_s,
            "max_rel_diff": max_relative_difference(ours["ipred"][: len(subset)][observed], theirs[observed]),
        }
    return figures


REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "pk"
# name: (file, rows kept, model, parameters from the file's true individual values)
FITTING = {
    "pheno (iv_1cpt, 59 subjects)": ("pheno_sd.csv", None, "iv_1cpt", {"cl": 0.0047 * 1.4, "v": 1.4}),
    "ACOP oral SD=0 (oral_1cpt, SS=1)": ("Oral_1CPT.csv", 0, "oral_1cpt", {"ka": "@KA", "cl": "@CL", "v": "@V"}),
    "ACOP bolus SD=1 (iv_1cpt)": ("Bolus_1CPT.csv", 1, "iv_1cpt", {"cl": "@CL", "v": "@V"}),
}


def bench_repeated(repeats: int = 50) -> dict:
    """ms per prediction of the observed rows, lockstep vs superposition, and their difference."""
    figures = {}
    for name, (file, single_dose, model, params) in FITTING.items():
        if not (REFERENCE / file).exists():
            continue
        frame = pd.read_csv(REFERENCE / file)
        if single_dose is not None:  # SS = 99 marks "not a steady-state record" in the ACOP files
            frame = frame[frame["SD"] == single_dose].replace({"SS": {99: 0}})
        data = prepare_dataset(frame)
        spec = get_model(model)
        values = resolve_parameters(data, spec, params)
        schedule = build_schedule(data, values)
        rows = np.flatnonzero((data["EVID"] == 0).to_numpy() & (data["MDV"] == 0).to_numpy())
        fast = Superposition(data, spec, values, schedule, rows=rows)
        before = predict_resolved(data, spec, values, schedule)[rows]
        after = fast.predict(values.structural)
        lockstep_s = median_seconds(lambda: predict_resolved(data, spec, values, schedule)[rows], repeats=repeats)
        fast_s = median_seconds(lambda: fast.predict(values.structural), repeats=repeats)
        figures[name] = {
            "subjects": schedule.n_subjects,
            "observations": len(rows),
            "lockstep_ms": 1e3 * lockstep_s,
            "superposition_ms": 1e3 * fast_s,
            "speedup": lockstep_s / fast_s,
            "max_rel_diff": max_relative_difference(after, before),
        }
    return figures


def run(n_subjects: int = 10_000, n_reference: int = 200, extra_engines: Mapping[str, Engine] | None = None) -> dict:
    return {model: bench_model(model, n_subjects, n_reference, extra_engines or {}) for model in TYPICAL}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=10_000)
    parser.add_argument("--reference-subjects", type=int, default=200)
    args = parser.parse_args()
    results = run(args.subjects, args.reference_subjects, extra_engines=roadrunner_engines(tuple(TYPICAL)))
    repeated = bench_repeated()
    table = Table(title=f"PK: {args.subjects} subjects × {len(OUTPUT_TIMES_H)} times, 100 mg q12h × 6")
    for column in ("model", "ours (s)", "engine", "engine, extrapolated (s)", "speed-up", "max rel diff"):
        table.add_column(column)
    for model, figures in results.items():
        for name, engine in figures["engines"].items():
            table.add_row(
                model,
                f"{figures['ours_s']:.3f}",
                f"{name} (timed on {engine['timed_subjects']})",
                f"{engine['extrapolated_s']:.1f}",
                f"{engine['speedup']:.0f}×",
                f"{engine['max_rel_diff']:.1e}",
            )
    Console().print(table)
    table = Table(title="PK: repeated prediction for fitting (ms per call, observed rows)")
    for column in (
        "dataset",
        "subjects",
        "observations",
        "lockstep (ms)",
        "superposition (ms)",
        "speed-up",
        "max rel diff",
    ):
        table.add_column(column)
    for name, f in repeated.items():
        table.add_row(
            name,
            str(f["subjects"]),
            str(f["observations"]),
            f"{f['lockstep_ms']:.3f}",
            f"{f['superposition_ms']:.3f}",
            f"{f['speedup']:.0f}×",
            f"{f['max_rel_diff']:.1e}",
        )
    Console().print(table)
    path = write_results(
        "pk",
        {
            "target": "≥ 100× the solve_ivp LSODA (rtol 1e-8) loop, same answers",
            "lsoda": LSODA,
            "results": results,
            "repeated_prediction": {"target": "pheno population fit ≤ 5 s (≲ 0.2 ms per call)", "results": repeated},
        },
    )
    Console().print(f"written {path}")


if __name__ == "__main__":
    main()
