"""Many-start FOCE-I population fits on Dask (issue #13 item 5): the same fit as the serial start loop.

Phenobarbital (../shared/reference/pk, the NONMEM reference model): the starts on a 2-process
LocalCluster and on a real `dask scheduler` + `dask worker` started on loopback (the fixture of
tests/twin/test_compute.py) give the record of the serial loop; the winner is the lowest OFV of
the starts run one by one; bad input is one line and exit 2.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from calibration.errors import CalibrationError
from calibration.estimate.multistart import compute_on
from calibration.estimate.population import Foce, fit_population
from calibration.estimate.population_starts import StartProblem, population_starts, run_start
from calibration.io.reference_pk import ReferenceDataMissing, phenobarbital, reference_file
from tests.net import free_loopback_port
from tests.twin.test_compute import scheduler  # noqa: F401  (a real scheduler and worker on loopback)
from twin.compute import ComputePlan
from ui.cli.app import app

N_STARTS = 4
runner = CliRunner()


@pytest.fixture(scope="module")
def pheno():
    try:
        case = phenobarbital()
    except ReferenceDataMissing as exc:
        pytest.skip(f"!!! {exc}: many-start population fits SKIPPED !!!")
    return case.model(case.problem.predict), case.problem.population_data(), case.theta0, case.sigma0


def _fit(pheno, **options):  # noqa: ANN001, ANN202
    model, data, theta0, sigma0 = pheno
    return fit_population(model, data, theta0, sigma0=sigma0, covariance=True, n_starts=N_STARTS, seed=5, **options)


def _same(a, b) -> None:  # noqa: ANN001
    left, right = a.to_dict(), b.to_dict()
    left.pop("wall_time_s"), right.pop("wall_time_s")
    assert left == right


def test_the_starts_are_the_initial_estimates_then_seeded_perturbations_of_theta():
    x0 = np.log([0.005, 1.0, 0.1, 0.1, 0.1, 0.1])
    starts = population_starts(x0, 3, 5, seed=5)
    assert np.array_equal(starts[0], x0)
    assert all(np.array_equal(s[3:], x0[3:]) for s in starts)  # ω² and σ as given
    assert len({tuple(s[:3]) for s in starts}) == 5  # five different θ
    assert all(np.max(np.abs(s - x0)) <= np.log(3.0) for s in starts)
    assert all(np.array_equal(a, b) for a, b in zip(starts, population_starts(x0, 3, 5, seed=5)))
    with pytest.raises(CalibrationError, match="--starts 0: give at least 1"):
        population_starts(x0, 3, 0, seed=5)


def test_the_best_start_is_the_lowest_ofv_of_the_starts_run_one_by_one(pheno):
    model, data, theta0, sigma0 = pheno
    objective = Foce(model, data)
    x0 = objective.pack(np.array([theta0[n] for n in model.theta_names]), np.full(2, 0.1), sigma0)
    values = [run_start(StartProblem(model, data, "analytic"), x)[0] for x in population_starts(x0, 3, N_STARTS, 5)]
    record = _fit(pheno)
    assert record.minus2ll == min(values)
    assert record.minus2ll == pytest.approx(586.27606, abs=0.5)  # NONMEM 7


def test_starts_on_a_two_process_local_cluster_equal_the_serial_loop(pheno):
    serial = _fit(pheno)
    seen: list[tuple[int, int]] = []
    with compute_on(ComputePlan(workers=2)):
        spread = _fit(pheno, progress=lambda done, total: seen.append((done, total)))
    _same(serial, spread)
    assert seen == [(k, N_STARTS) for k in range(1, N_STARTS + 1)]  # one report per finished start


def _cli(*extra: str) -> list[str]:
    try:
        path = reference_file("pheno_sd.csv")
    except ReferenceDataMissing as exc:
        pytest.skip(f"!!! {exc}: SKIPPED !!!")
    return ["fit", str(path), "-m", "iv_1cpt", "--population", "--init", "cl=0.01", "--init", "v=1", *extra]


def test_chiptwin_fit_population_starts_on_a_dask_scheduler_equal_the_run_here(scheduler: str) -> None:  # noqa: F811
    here = runner.invoke(app, _cli("--starts", "3", "--json"))
    assert here.exit_code == 0, here.output
    remote = runner.invoke(app, _cli("--starts", "3", "--scheduler", scheduler, "--json"))
    assert remote.exit_code == 0, remote.output
    local, cluster = json.loads(here.stdout), json.loads(remote.stdout)
    local.pop("wall_time_s"), cluster.pop("wall_time_s")
    assert local == cluster
    assert local["method"] == "population-foce-i" and local["converged"]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (("--starts", "0"), "--starts 0: give at least 1"),
        (("--starts", "2", "--scheduler", "127.0.0.1:8786"), "not a Dask scheduler address"),
        (
            ("--starts", "2", "--scheduler", "tcp://127.0.0.1:{port}"),
            "cannot reach the Dask scheduler at tcp://127.0.0.1",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(extra: tuple[str, ...], expected: str) -> None:
    port = free_loopback_port()  # nothing listens there
    result = runner.invoke(app, _cli(*(e.format(port=port) for e in extra)))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
