"""PK calibration benchmarks: FOCE-I fits (issues #5, #11) beside NONMEM, scipy and R nlme; chip fits are in bench_fit.

    .venv/bin/python -m benchmarks.bench_fit_pk --foce [--repeats 3] [--skip-old]      # issue #11 → results/foce_engines.json
    .venv/bin/python -m benchmarks.bench_fit_pk [--cap 300] [--repeats 3] [--baselines L-BFGS-B,Nelder-Mead] [--skip-acop]

Issue #11 item 3 (``--foce``), wall and CPU time, medians of ``--repeats``: the FOCE-I fits of
phenobarbital and ACOP oral (multiple dose) by the new engine (``fit_population(gradient=
"analytic")``: exact-Newton modes warm-started from the last outer point, the analytic outer
gradient through the implicit function theorem, a covariance step differencing that gradient)
beside the old one (``gradient="differences"``: expected-information Newton modes, BFGS on
central differences of the OFV, a Hessian of second differences of the OFV), each with and
without the covariance step, OFVs beside NONMEM's; and warfarin PK (``warfarin_pk``: the cp rows
of warfarin.csv, oral_1cpt, combined error) beside nlmixr2's CL and V and the former engine's OFV
(that engine once, estimation only: ~2 min). Targets: ACOP oral ≤ 3 s, warfarin PK ≤ 1 s. Then
theophylline (R's ``Theoph`` as nlmixr2's ``theo_sd``) beside R ``nlme`` in the same run, medians
of ``--theophylline-repeats`` (``theophylline_vs_nlme``; Debian r-cran-nlme is installed with
apt-get when Rscript is missing; ``--skip-theophylline`` leaves it out): target no slower than
nlme (CPU) with nlmixr2's FOCEi answer.

Targets: phenobarbital population fit ≤ 5 s; ACOP oral multiple-dose fit ≤ 30 s; ranking
200 candidate designs ≤ 5 s (``benchmarks.bench_closed_loop.time_ranking``).

The fits are those of tests/calibration/test_population_reference.py (NONMEM 7 FOCE-I
reference OFVs 586.276 and 43707.117): phenobarbital (``pheno_sd.csv``, θ·WGT covariate
model) and ACOP ``Oral_1CPT.csv`` multiple-dose rows (SD = 0, 120 subjects, steady state),
from ../shared/reference/pk/. The project's fit is ``fit_population`` as the tests call it
(superposition predictor ``twin.pk.fast.Superposition``, batched Newton for the modes,
BFGS on central differences), timed with its covariance step (the target) and without
(estimation only, the like-for-like figure for the comparison).

Baseline, "plain scipy.optimize, no sensitivities": the same FOCE-I objective
(``calibration.estimate.population.Foce``) on the lockstep predictor ``twin.pk.simulate.predict_resolved``,
minimised by ``scipy.optimize.minimize`` with its default options — L-BFGS-B on scipy's own
forward-difference gradient, and Nelder–Mead — without a covariance step; each stopped after
``--cap`` seconds (then reported as "> cap"). A baseline that stops away from the project's
OFV (more than 0.5 off) is reported with its OFV, not as a speed-up. (The project's fit uses
no sensitivities either: its gradients are central differences; what it adds is the fast
predictor, the batched Newton modes and the central-difference BFGS.)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from scipy.optimize import minimize

from benchmarks.bench_closed_loop import time_ranking
from benchmarks.common import median_seconds, timed, write_results
from calibration.estimate.error_models import ErrorModel
from calibration.estimate.population import Foce, PopulationModel, default_sigma, fit_population, lognormal_individual
from calibration.io.datasets import load_nonmem
from calibration.io.nonmem import NonmemProblem
from twin.dataset import read_dataset
from twin.pk.simulate import predict_resolved

PK = Path(__file__).resolve().parents[2] / "shared" / "reference" / "pk"
TARGETS_S = {"pheno": 5.0, "acop_oral_md": 30.0, "ranking_200": 5.0}
NONMEM_OFV = {"pheno": 586.27606, "acop_oral_md": 43707.117}
BASELINES = ("L-BFGS-B", "Nelder-Mead")  # scipy's defaults; L-BFGS-B on its forward-difference gradient


def pheno():
    """As test_phenobarbital_matches_nonmem_foce_i: TVCL = θ1·WGT, TVV = θ2·WGT·(1 + θ3·[APGR < 5])."""
    data = read_dataset(PK / "pheno_sd.csv")
    problem = NonmemProblem(data, "iv_1cpt", ("cl", "v"))
    first = data.groupby("ID", sort=False).first()
    weight, apgar = first["WT"].to_numpy(), first["APGR"].to_numpy()

    def individual(theta, eta):
        cl = theta[0] * weight * np.exp(eta[:, 0])
        v = theta[1] * weight * (1 + theta[2] * (apgar < 5)) * np.exp(eta[:, 1])
        return np.stack([cl, v], axis=1)

    def model(predict):
        return PopulationModel(
            ("theta1", "theta2", "theta3"), ("cl", "v"), individual, predict, ErrorModel("prop"), phi_names=("cl", "v")
        )

    return problem, model, {"theta1": 0.005, "theta2": 1.0, "theta3": 0.1}, np.array([0.1])


def acop_oral_md():
    """As test_acop_oral_multiple_dose_matches_nonmem (fit_nonmem's population branch, restated)."""
    frame = pd.read_csv(PK / "Oral_1CPT.csv")
    frame = frame[frame["SD"] == 0].copy()
    frame.loc[frame["SS"] == 99, "SS"] = 0  # 99 = "not a steady-state record" in these files
    with tempfile.TemporaryDirectory() as folder:
        frame.to_csv(Path(folder) / "oral.csv", index=False)
        data, _ = load_nonmem(Path(folder) / "oral.csv")
    names = ("ka", "cl", "v")
    problem = NonmemProblem(data, "oral_1cpt", names)

    def model(predict):
        return PopulationModel(names, names, lognormal_individual(names, names), predict, ErrorModel("prop"))

    return problem, model, {"ka": 1.0, "cl": 4.0, "v": 70.0}, None


def warfarin_pk():
    """Warfarin PK alone: the cp rows of ``warfarin.csv`` (32 patients, 251 concentrations, one oral
    dose each), oral_1cpt with log-normal ka, CL, V and a combined error. No published FOCE-I run of
    this model is at hand; the references are nlmixr2's SAEM estimates of CL and V (and their BSV)
    from the joint PK/PD fit (shared/reference/README.md) and our own former engine's OFV
    (central differences of the OFV, expected-information modes: an independent path)."""
    frame = pd.read_csv(PK / "warfarin.csv")
    frame = frame[(frame["dvid"] == "cp") | (frame["evid"] != 0)]
    names = ("ka", "cl", "v")
    problem = NonmemProblem(frame, "oral_1cpt", names)

    def model(predict):
        return PopulationModel(names, names, lognormal_individual(names, names), predict, ErrorModel("comb"))

    return problem, model, {"ka": 1.0, "cl": 0.1, "v": 10.0}, np.array([0.8, 0.12])


CASES = {"pheno": pheno, "acop_oral_md": acop_oral_md}
FOCE_CASES = {**CASES, "warfarin_pk": warfarin_pk}
# nlmixr2's SAEM fit of warfarin_pkpd (shared/reference/README.md): the parameters the 1-cpt PK model shares
WARFARIN_NLMIXR2 = {"cl": 0.14, "v": 7.43, "cv_percent_cl": 26.8, "cv_percent_v": 21.7}
WARFARIN_PK_OFV = 423.3274  # the former engine (central differences of the OFV) on this model, measured here


def project_fit(case: str, covariance: bool, repeats: int) -> dict:
    """Set-up (dataset, superposition terms) and the fit, timed together: median of ``repeats``."""
    last = {}

    def work():
        problem, model, theta0, sigma0 = CASES[case]()
        last["record"] = fit_population(
            model(problem.predict), problem.population_data(), theta0, sigma0=sigma0, covariance=covariance
        )

    seconds = median_seconds(work, repeats)
    record = last["record"]
    return {
        "seconds": seconds,
        "ofv": record.minus2ll,
        "converged": record.converged,
        "theta": {n: v.estimate for n, v in record.theta.items()},
    }


def lockstep(problem: NonmemProblem):
    """``problem.predict`` without the fast path: every call re-solves the whole dataset."""

    def predict(phi: np.ndarray) -> np.ndarray:
        structural = {**problem.values.structural, **{n: phi[:, k] for k, n in enumerate(problem.phi_names)}}
        full = predict_resolved(
            problem.data,
            problem.spec,
            replace(problem.values, structural=structural),
            problem.schedule,
            observable=problem.observable,
        )
        return problem.scale * full[problem.rows]

    return predict


class _TimeUp(Exception):
    pass


def _objective(case: str, fast: bool):
    """The FOCE-I objective of a case on the project's or the lockstep predictor, and its start point."""
    problem, model, theta0, sigma0 = CASES[case]()
    pop, data = model(problem.predict if fast else lockstep(problem)), problem.population_data()
    objective = Foce(pop, data)
    sigma = default_sigma(pop.error, data) if sigma0 is None else sigma0
    return objective, objective.pack(
        np.array([theta0[n] for n in pop.theta_names]), np.full(len(pop.eta_names), 0.1), sigma
    )


def one_ofv_seconds(case: str) -> dict:
    """One OFV evaluation at the start (modes from η = 0) on each predictor: median of 3."""
    timings = {}
    for label, fast in (("project_s", True), ("lockstep_s", False)):
        objective, x0 = _objective(case, fast)
        timings[label] = median_seconds(lambda: (objective.eta.fill(0.0), objective.ofv(x0)), 3)
    return timings


def baseline_fit(case: str, method: str, cap_s: float, project_ofv: float) -> dict:
    """The same OFV on lockstep predictions, minimised by scipy with its default options."""
    objective, x0 = _objective(case, fast=False)
    best = {"ofv": np.inf, "x": x0, "seconds_to_within_0_5": None}
    started = time.perf_counter()

    def capped(x):
        if time.perf_counter() - started > cap_s:
            raise _TimeUp
        value = objective.ofv(x)
        if value < best["ofv"]:
            best.update(ofv=value, x=x.copy())
        if value <= project_ofv + 0.5 and best["seconds_to_within_0_5"] is None:
            best["seconds_to_within_0_5"] = time.perf_counter() - started
        return value

    try:
        with np.errstate(all="ignore"):
            result = minimize(capped, x0, method=method)
        capped_out, success, message, x = False, bool(result.success), str(result.message), result.x
    except _TimeUp:
        capped_out, success, message, x = True, False, f"stopped at the {cap_s:g} s cap", best["x"]
    seconds = time.perf_counter() - started
    ofv = objective.ofv(x)  # with the modes as the optimiser left them (warm), as the project reports
    objective.forget()  # and from η = 0: Foce's warm-started modes can stick in a worse local mode
    return {
        "method": method,
        "seconds": seconds,
        "capped": capped_out,
        "ofv": ofv,
        "ofv_from_eta_0": objective.ofv(x),
        "seconds_to_within_0_5": best["seconds_to_within_0_5"],
        "scipy_success": success,
        "message": message,
        "evaluations": objective.evaluations,
        "max_abs_step_from_start_log": float(np.max(np.abs(x - x0))),
        "theta": dict(zip(objective.model.theta_names, map(float, objective.unpack(x)[0]))),
    }


FOCE_TARGETS_S = {"acop_oral_md": 3.0, "warfarin_pk": 1.0}
REFERENCE_OFV = {**NONMEM_OFV, "warfarin_pk": WARFARIN_PK_OFV}


def foce_fit(case: str, gradient: str, covariance: bool):
    """Set-up (dataset, superposition terms) and the fit, as ``project_fit`` times them."""
    problem, model, theta0, sigma0 = FOCE_CASES[case]()
    return fit_population(
        model(problem.predict),
        problem.population_data(),
        theta0,
        sigma0=sigma0,
        covariance=covariance,
        gradient=gradient,
    )


NLME_SCRIPT = r"""
suppressMessages(library(nlme))
args <- commandArgs(trailingOnly = TRUE)
d <- as.data.frame(Theoph)
d$Subject <- as.integer(as.character(d$Subject))
d$Amt <- d$Dose * d$Wt  # mg, as nlmixr2data's theo_sd
write.csv(d, args[1], row.names = FALSE)
g <- groupedData(conc ~ Time | Subject, data = d)
fol <- function(Amt, Time, lKa, lCl, lV) {
  ka <- exp(lKa); k <- exp(lCl - lV)
  Amt * ka / (exp(lV) * (ka - k)) * (exp(-k * Time) - exp(-ka * Time))
}
repeats <- as.integer(args[2])
cpu <- numeric(repeats); wall <- numeric(repeats)
for (i in seq_len(repeats)) {
  t0 <- proc.time()
  fit <- nlme(conc ~ fol(Amt, Time, lKa, lCl, lV), data = g, fixed = lKa + lCl + lV ~ 1,
              random = pdDiag(lKa + lCl + lV ~ 1), start = c(lKa = 0.4, lCl = 1.1, lV = 3.4), method = "ML")
  el <- proc.time() - t0
  cpu[i] <- el[["user.self"]] + el[["sys.self"]]; wall[i] <- el[["elapsed"]]
}
vc <- as.numeric(VarCorr(fit)[1:3, "Variance"])
cat(sprintf('{"minus2loglik": %.6f, "theta": {"ka": %.8g, "cl": %.8g, "v": %.8g}, "omega2": {"ka": %.8g, "cl": %.8g, "v": %.8g}, "add_sd": %.8g, "n_observations": %d, "cpu_s": %.4f, "wall_s": %.4f, "cpu_all_s": [%s], "nlme_version": "%s"}\n',
            -2 * as.numeric(logLik(fit)), exp(fixef(fit)[["lKa"]]), exp(fixef(fit)[["lCl"]]), exp(fixef(fit)[["lV"]]),
            vc[1], vc[2], vc[3], fit$sigma, nrow(d), median(cpu), median(wall), paste(sprintf("%.4f", cpu), collapse = ", "),
            as.character(packageVersion("nlme"))))
"""
# nlmixr2's FOCEi on theo_sd (issue #11): the answer ours must give; −2LL without the constant
NLMIXR2_THEOPHYLLINE = {"ka": 1.590, "cl": 2.752, "v": 31.81, "minus2ll": 116.803}


def ensure_rscript() -> str | None:
    """Rscript with nlme; on Debian, installs r-cran-nlme with apt-get when Rscript is missing."""
    import shutil
    import subprocess

    if shutil.which("Rscript") is None and shutil.which("apt-get") is not None:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run(
            [*sudo, "apt-get", "install", "-y", "--no-install-recommends", "r-cran-nlme"],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            check=False,
        )
    return shutil.which("Rscript")


def theophylline_vs_nlme(repeats: int, skip_old: bool) -> dict:
    """R's built-in ``Theoph`` as nlmixr2data's ``theo_sd`` (12 subjects, 132 concentrations, dose
    AMT = Dose·Wt in mg): R nlme (Lindstrom–Bates, ML) with log-normal ka, CL, V (diagonal Ω) and
    an additive error, beside our FOCE-I fit of oral_1cpt on the same data exported to CSV (with an
    additive error FOCE-I is FOCE, the objective nlme's ML approximates). Like for like: nlme's timer
    holds the nlme() call on a data frame already in memory (its fit includes the approximate
    covariance of the variance components), ours the problem's set-up (schedule, superposition
    terms) and the fit, with and without the covariance step, on a dataset already read. −2LL
    compared with the N·log 2π constant added to our OFV; our answer against nlmixr2's FOCEi."""
    import json
    import subprocess

    rscript = ensure_rscript()
    if rscript is None:
        return {"error": "Rscript not available (apt-get install r-cran-nlme failed or no apt-get)"}
    with tempfile.TemporaryDirectory() as folder:
        script, raw = Path(folder) / "theoph.R", Path(folder) / "theoph.csv"
        script.write_text(NLME_SCRIPT)
        run = subprocess.run([rscript, str(script), str(raw), str(repeats)], capture_output=True, text=True)
        if run.returncode != 0:
            return {"error": f"Rscript failed: {run.stderr[-500:]}"}
        nlme = json.loads(run.stdout.strip().splitlines()[-1])
        frame = pd.read_csv(raw)
        rows = []
        for subject, d in frame.groupby("Subject", sort=True):
            rows.append({"ID": subject, "TIME": 0.0, "AMT": d["Amt"].iloc[0], "EVID": 1, "CMT": 1, "DV": 0.0, "MDV": 1})
            rows += [
                {"ID": subject, "TIME": t, "AMT": 0.0, "EVID": 0, "CMT": 2, "DV": c, "MDV": 0}
                for t, c in zip(d["Time"], d["conc"])
            ]
        path = Path(folder) / "theoph_nonmem.csv"
        pd.DataFrame(rows).to_csv(path, index=False)
        data, _ = load_nonmem(path)
    out: dict = {"nlme": nlme, "nlmixr2_focei": NLMIXR2_THEOPHYLLINE}
    for engine, gradient in (("new", "analytic"), ("old", "differences")):
        for covariance in (True, False):
            if engine == "old" and (skip_old or not covariance):
                continue
            run_ = timed(lambda: _theoph_fit(data, gradient, covariance), repeats)
            record = run_.pop("result")
            run_.update(
                minus2ll=record.minus2ll,
                minus2ll_with_constant=record.minus2ll + record.n_observations * np.log(2 * np.pi),
                theta={n: v.estimate for n, v in record.theta.items()},
                omega2={n: v["variance"] for n, v in record.omega.items()},
                sigma=record.sigma,
                converged=record.converged,
            )
            out[engine if covariance else f"{engine}_estimation"] = run_
    if "old" in out:
        out["speedup_cpu"] = out["old"]["cpu_s"] / out["new"]["cpu_s"]
    new = out["new"]
    out["cpu_new_over_nlme"] = new["cpu_s"] / nlme["cpu_s"]
    out["cpu_new_estimation_over_nlme"] = out["new_estimation"]["cpu_s"] / nlme["cpu_s"]
    out["minus2ll_new_minus_nlme"] = new["minus2ll_with_constant"] - nlme["minus2loglik"]
    out["minus2ll_new_minus_nlmixr2"] = new["minus2ll"] - NLMIXR2_THEOPHYLLINE["minus2ll"]
    out["theta_new_over_nlmixr2"] = {n: new["theta"][n] / NLMIXR2_THEOPHYLLINE[n] - 1 for n in ("ka", "cl", "v")}
    return out


def _theoph_fit(data: pd.DataFrame, gradient: str, covariance: bool = True):
    names = ("ka", "cl", "v")
    problem = NonmemProblem(data, "oral_1cpt", names)
    model = PopulationModel(names, names, lognormal_individual(names, names), problem.predict, ErrorModel("add"))
    return fit_population(
        model,
        problem.population_data(),
        {"ka": 1.5, "cl": 3.0, "v": 30.0},
        gradient=gradient,
        covariance=covariance,
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
        t = figures["theophylline"]
        if "error" not in t:
            for label, key in (("yes", "new"), ("no", "new_estimation")):
                table.add_row(
                    "theophylline (add)",
                    label,
                    f"{t[key]['wall_s']:.3f}",
                    f"{t[key]['cpu_s']:.3f}",
                    f"{t.get('old', {}).get('wall_s', float('nan')):.2f}" if key == "new" else "",
                    f"{t.get('old', {}).get('cpu_s', float('nan')):.2f}" if key == "new" else "",
                    f"{t.get('speedup_cpu', float('nan')):.1f}×" if key == "new" else "",
                    f"{t[key]['minus2ll']:.3f}",
                    f"{t.get('old', {}).get('minus2ll', float('nan')):.3f}" if key == "new" else "",
                    f"nlmixr2 {NLMIXR2_THEOPHYLLINE['minus2ll']:.3f}",
                )
            nlme = t["nlme"]
            table.add_row(
                "  R nlme (ML)",
                "yes",
                f"{nlme['wall_s']:.3f}",
                f"{nlme['cpu_s']:.3f}",
                *[""] * 3,
                f"{nlme['minus2loglik'] - nlme['n_observations'] * np.log(2 * np.pi):.3f}",
                "",
                "",
            )
    console.print(table)
    console.print(f"written to {write_results('foce_engines', figures)}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--foce", action="store_true", help="issue #11: FOCE-I fits, analytic gradient beside differences"
    )
    parser.add_argument("--skip-old", action="store_true", help="with --foce: leave out the old engine's fit")
    parser.add_argument("--skip-theophylline", action="store_true", help="with --foce: leave out R nlme's Theoph")
    parser.add_argument(
        "--theophylline-repeats", type=int, default=15, help="with --foce: repeats of the theophylline and nlme fits"
    )
    parser.add_argument("--cap", type=float, default=300.0, help="baseline time limit per fit (s)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the phenobarbital fits (median)")
    parser.add_argument("--baselines", default=",".join(BASELINES), help="scipy methods for the baseline")
    parser.add_argument("--skip-acop", action="store_true")
    args = parser.parse_args()
    if args.foce:
        foce_benchmarks(args.repeats, args.skip_old, not args.skip_theophylline, args.theophylline_repeats)
        return
    console = Console()
    figures: dict = {"targets_s": TARGETS_S, "nonmem_ofv": NONMEM_OFV, "baseline_cap_s": args.cap}
    for case in [c for c in CASES if not (args.skip_acop and c == "acop_oral_md")]:
        repeats = args.repeats if case == "pheno" else 1
        console.print(f"{case}: project fit, with and without the covariance step …")
        full, estimation = project_fit(case, True, repeats), project_fit(case, False, repeats)
        figures[case] = {
            "project": full,
            "project_estimation": estimation,
            "meets_target": full["seconds"] <= TARGETS_S[case],
            "one_ofv_evaluation": one_ofv_seconds(case),
            "baselines": {},
        }
        for method in args.baselines.split(","):
            console.print(f"{case}: baseline, lockstep + scipy {method} (cap {args.cap:g} s) …")
            base = baseline_fit(case, method, args.cap, estimation["ofv"])
            base["ratio_to_project_estimation"] = base["seconds"] / estimation["seconds"]
            base["ofv_minus_project"] = base["ofv"] - estimation["ofv"]
            base["same_ofv_within_0_5"] = bool(abs(base["ofv_minus_project"]) <= 0.5)
            figures[case]["baselines"][method] = base
    console.print("ranking 200 candidates …")
    figures["ranking_200"] = time_ranking()
    table = Table(
        title="wall time (s): project fit (with covariance step / estimation only) vs the baseline "
        "(lockstep predictions + plain scipy.optimize, estimation only)"
    )
    for column in (
        "task",
        "target",
        "project",
        "estimation",
        "baseline",
        "time",
        "ratio",
        "OFV project",
        "OFV baseline",
        "NONMEM",
    ):
        table.add_column(column)
    for case in [c for c in NONMEM_OFV if c in figures]:
        f = figures[case]
        for k, (method, b) in enumerate(f["baselines"].items()):
            ratio = f"{b['ratio_to_project_estimation']:.1f}×"
            ratio = f"> {ratio}" if b["capped"] else ratio if b["same_ofv_within_0_5"] else f"({ratio}) wrong OFV"
            tail = " (capped)" if b["capped"] else "" if b["same_ofv_within_0_5"] else f" ({b['message'][:24]})"
            table.add_row(
                *(
                    [
                        case,
                        f"≤ {TARGETS_S[case]:g}",
                        f"{f['project']['seconds']:.2f}",
                        f"{f['project_estimation']['seconds']:.2f}",
                    ]
                    if k == 0
                    else [""] * 4
                ),
                method,
                ("> " if b["capped"] else "") + f"{b['seconds']:.1f}",
                ratio,
                f"{f['project_estimation']['ofv']:.3f}" if k == 0 else "",
                f"{b['ofv']:.3f}{tail}",
                f"{NONMEM_OFV[case]:.3f}" if k == 0 else "",
            )
    table.add_row("rank 200 designs", "≤ 5", f"{figures['ranking_200']['median_s']:.2f}", *[""] * 7)
    console.print(table)
    console.print(f"written to {write_results('fit', figures)}")


if __name__ == "__main__":
    main()
