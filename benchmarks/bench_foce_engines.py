"""FOCE-I engines (issue #11 item 3): the analytic engine beside the former difference engine, wall and CPU time.

    .venv/bin/python -m benchmarks.bench_foce_engines [--repeats 3] [--skip-old] [--skip-theophylline]
    # → results/foce_engines.json (``python -m benchmarks.bench_fit_pk --foce`` is the older spelling)

Medians of ``--repeats``: the FOCE-I fits of phenobarbital and ACOP oral (multiple dose) by the
new engine (``fit_population(gradient="analytic")``: exact-Newton modes warm-started from the last
outer point, the analytic outer gradient through the implicit function theorem, a covariance step
differencing that gradient) beside the old one (``gradient="differences"``: expected-information
Newton modes, BFGS on central differences of the OFV, a Hessian of second differences of the
OFV), each with and without the covariance step, OFVs beside NONMEM's; and warfarin PK
(``warfarin_pk``: the cp rows of warfarin.csv, oral_1cpt, combined error) beside nlmixr2's CL and V
and the former engine's OFV (that engine once, estimation only: ~2 min). Targets: ACOP oral ≤ 3 s,
warfarin PK ≤ 1 s. Then theophylline beside R ``nlme`` in the same run
(``benchmarks.bench_theophylline``; ``--skip-theophylline`` leaves it out).

The phenobarbital and ACOP cases are those of tests/calibration/test_population_reference.py,
loaded by the same loader (``calibration.io.reference_pk``).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from benchmarks.bench_theophylline import table_rows, theophylline_vs_nlme
from benchmarks.common import timed, write_results
from calibration.estimate.error_models import ErrorModel
from calibration.estimate.population import PopulationModel, fit_population, lognormal_individual
from calibration.io.nonmem import NonmemProblem
from calibration.io.reference_pk import NONMEM_OFV, ReferenceCase, acop_oral_md, phenobarbital, reference_file


def warfarin_pk() -> ReferenceCase:
    """Warfarin PK alone: the cp rows of ``warfarin.csv`` (32 patients, 251 concentrations, one oral
    dose each), oral_1cpt with log-normal ka, CL, V and a combined error. No published FOCE-I run of
    this model is at hand; the references are nlmixr2's SAEM estimates of CL and V (and their BSV)
    from the joint PK/PD fit (shared/reference/README.md) and our own former engine's OFV
    (central differences of the OFV, expected-information modes: an independent path)."""
    frame = pd.read_csv(reference_file("warfarin.csv"))
    frame = frame[(frame["dvid"] == "cp") | (frame["evid"] != 0)]
    names = ("ka", "cl", "v")
    problem = NonmemProblem(frame, "oral_1cpt", names)

    def model(predict):
        return PopulationModel(names, names, lognormal_individual(names, names), predict, ErrorModel("comb"))

    return ReferenceCase(problem, model, {"ka": 1.0, "cl": 0.1, "v": 10.0}, np.array([0.8, 0.12]))


FOCE_CASES = {"pheno": phenobarbital, "acop_oral_md": acop_oral_md, "warfarin_pk": warfarin_pk}
# nlmixr2's SAEM fit of warfarin_pkpd (shared/reference/README.md): the parameters the 1-cpt PK model shares
WARFARIN_NLMIXR2 = {"cl": 0.14, "v": 7.43, "cv_percent_cl": 26.8, "cv_percent_v": 21.7}
WARFARIN_PK_OFV = 423.3274  # the former engine (central differences of the OFV) on this model, measured here
FOCE_TARGETS_S = {"acop_oral_md": 3.0, "warfarin_pk": 1.0}
REFERENCE_OFV = {**NONMEM_OFV, "warfarin_pk": WARFARIN_PK_OFV}


def foce_fit(case: str, gradient: str, covariance: bool):
    """Set-up (dataset, superposition terms) and the fit, as ``bench_fit_pk.project_fit`` times them."""
    c = FOCE_CASES[case]()
    return fit_population(
        c.model(c.problem.predict),
        c.problem.population_data(),
        c.theta0,
        sigma0=c.sigma0,
        covariance=covariance,
        gradient=gradient,
    )


def foce_benchmarks(repeats: int, skip_old: bool, theophylline: bool = True, theophylline_repeats: int = 15) -> dict:
    console = Console()
    figures: dict = {"targets_s": FOCE_TARGETS_S, "nonmem_ofv": NONMEM_OFV}
    table = Table(
        title="FOCE-I fits (s, medians): new = analytic outer gradient + exact-Newton warm-started modes; "
        "old = central differences of the OFV"
    )
    for column in (
        "fit",
        "covariance",
        "new wall",
        "new CPU",
        "old wall",
        "old CPU",
        "ratio (CPU)",
        "OFV new",
        "OFV old",
        "reference",
    ):
        table.add_column(column)
    for case in FOCE_CASES:
        figures[case] = {}
        for covariance in (False, True):
            label = "with_covariance" if covariance else "estimation"
            row: dict = {}
            for engine, gradient in (("new", "analytic"), ("old", "differences")):
                # the former engine takes ~2 min on warfarin PK: once, estimation only
                slow = case == "warfarin_pk" and engine == "old"
                if engine == "old" and (skip_old or (slow and covariance)):
                    continue
                console.print(f"{case} ({label}), {engine} engine …")
                run = timed(lambda: foce_fit(case, gradient, covariance), 1 if slow else repeats)
                record = run.pop("result")
                run.update(
                    ofv=record.minus2ll,
                    converged=record.converged,
                    theta={n: v.estimate for n, v in record.theta.items()},
                    omega2={n: v["variance"] for n, v in record.omega.items()},
                    cv_percent={n: v["cv_percent"] for n, v in record.omega.items()},
                    sigma=record.sigma,
                    se={n: v.se for n, v in record.theta.items()},
                )
                row[engine] = run
            if "old" in row:
                row["speedup_cpu"] = row["old"]["cpu_s"] / row["new"]["cpu_s"]
                row["speedup_wall"] = row["old"]["wall_s"] / row["new"]["wall_s"]
                row["ofv_new_minus_old"] = row["new"]["ofv"] - row["old"]["ofv"]
            row["ofv_new_minus_reference"] = row["new"]["ofv"] - REFERENCE_OFV[case]
            if case in FOCE_TARGETS_S:
                row["meets_target_cpu"] = row["new"]["cpu_s"] <= FOCE_TARGETS_S[case]
            if case == "warfarin_pk":  # relative to nlmixr2's SAEM PK/PD estimates
                new = row["new"]
                row["vs_nlmixr2"] = {
                    "cl": new["theta"]["cl"] / WARFARIN_NLMIXR2["cl"] - 1,
                    "v": new["theta"]["v"] / WARFARIN_NLMIXR2["v"] - 1,
                    "cv_percent_cl": new["cv_percent"]["cl"] / WARFARIN_NLMIXR2["cv_percent_cl"] - 1,
                    "cv_percent_v": new["cv_percent"]["v"] / WARFARIN_NLMIXR2["cv_percent_v"] - 1,
                }
            figures[case][label] = row
            old = row.get("old", {})
            table.add_row(
                case,
                "yes" if covariance else "no",
                f"{row['new']['wall_s']:.2f}",
                f"{row['new']['cpu_s']:.2f}",
                f"{old.get('wall_s', float('nan')):.2f}",
                f"{old.get('cpu_s', float('nan')):.2f}",
                f"{row.get('speedup_cpu', float('nan')):.1f}×",
                f"{row['new']['ofv']:.3f}",
                f"{old.get('ofv', float('nan')):.3f}",
                f"{REFERENCE_OFV[case]:.3f}" + (" (old engine)" if case == "warfarin_pk" else " NONMEM"),
            )
    if theophylline:
        console.print("theophylline: R nlme beside our FOCE-I fit …")
        figures["theophylline"] = theophylline_vs_nlme(theophylline_repeats, skip_old)
        table_rows(table, figures["theophylline"])  # none if R was not available
    console.print(table)
    console.print(f"written to {write_results('foce_engines', figures)}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each fit (median)")
    parser.add_argument("--skip-old", action="store_true", help="leave out the old engine's fit")
    parser.add_argument("--skip-theophylline", action="store_true", help="leave out R nlme's Theoph")
    parser.add_argument(
        "--theophylline-repeats", type=int, default=15, help="repeats of the theophylline and nlme fits"
    )
    args = parser.parse_args()
    foce_benchmarks(args.repeats, args.skip_old, not args.skip_theophylline, args.theophylline_repeats)


if __name__ == "__main__":
    main()
