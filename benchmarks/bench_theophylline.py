"""Theophylline beside R ``nlme`` (issue #11): our FOCE-I fit and nlme's on R's ``Theoph``, timed in one run.

    .venv/bin/python -m benchmarks.bench_theophylline [--repeats 15] [--skip-old]   # → results/theophylline.json

R's built-in ``Theoph`` as nlmixr2's ``theo_sd`` (12 subjects, 132 concentrations): R nlme
(Lindstrom–Bates, ML) with log-normal ka, CL, V and an additive error, beside our FOCE-I fit of
oral_1cpt on the same data (``fit_population``, analytic engine, with and without the covariance
step; the former difference engine too unless ``--skip-old``), medians of ``--repeats``, wall and
CPU time. Target: no slower than nlme (CPU) with nlmixr2's FOCEi answer. Debian r-cran-nlme is
installed with apt-get when Rscript is missing. ``benchmarks.bench_foce_engines`` runs this too,
as the last rows of its table.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from benchmarks.common import timed, write_results
from calibration.estimate.error_models import ErrorModel
from calibration.estimate.population import PopulationModel, fit_population, lognormal_individual
from calibration.io.datasets import load_nonmem
from calibration.io.nonmem import NonmemProblem

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


def table_rows(table: Table, t: dict) -> None:
    """The theophylline rows of the FOCE-I table: ours with and without the covariance step, then R nlme."""
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="repeats of the theophylline and nlme fits (median)")
    parser.add_argument("--skip-old", action="store_true", help="leave out the former engine's fit")
    args = parser.parse_args()
    console = Console()
    figures = theophylline_vs_nlme(args.repeats, args.skip_old)
    if "error" in figures:
        console.print(f"[bold red]{figures['error']}[/]")
    else:
        table = Table(title="theophylline (s, medians): our FOCE-I fit beside R nlme")
        for column in (
            "fit",
            "covariance",
            "wall",
            "CPU",
            "old wall",
            "old CPU",
            "ratio (CPU)",
            "OFV",
            "OFV old",
            "reference",
        ):
            table.add_column(column)
        table_rows(table, figures)
        console.print(table)
    console.print(f"written to {write_results('theophylline', figures)}")


if __name__ == "__main__":
    main()
