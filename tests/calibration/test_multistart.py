"""Many-start fits on a Dask LocalCluster give the fit of the serial start loop, exactly: both engines
(L-BFGS-B on differences; Fisher scoring on the chip model's exact sensitivities), and the best start
is the lowest objective with ties to the earliest start whatever order the workers finish in."""

from __future__ import annotations

import time

import numpy as np
import pytest

from calibration.design.insilico import Experiment, lab_rows, write_lab_dataset
from calibration.estimate.individual import fit_individual
from calibration.estimate.lab_fit import fit_lab
from calibration.estimate.multistart import best_of_starts, compute_on
from tests.calibration.test_individual import TRUTH as ORAL_TRUTH
from tests.calibration.test_individual import noisy, problem
from twin.compute import ComputePlan

CHIP_TRUTH = {"ps": 0.5, "vmax": 2.0, "km": 10.0, "kon": 0.05, "koff": 0.02}


@pytest.fixture(scope="module")
def cluster():
    import distributed

    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as local,
        distributed.Client(local) as client,
    ):
        yield ComputePlan(scheduler=client)


def _same(a, b) -> None:  # noqa: ANN001
    left, right = a.to_dict(), b.to_dict()
    left.pop("wall_time_s"), right.pop("wall_time_s")
    assert left == right


def test_lbfgs_starts_on_the_cluster_equal_the_serial_loop(cluster):
    data = noisy(np.random.default_rng(3), cv=0.1)
    initial = {"ka": 0.5, "cl": 1.0, "v": 10.0}
    serial = fit_individual(problem(data), initial, n_starts=6, seed=2)
    seen: list[tuple[int, int]] = []
    with compute_on(cluster):
        spread = fit_individual(problem(data), initial, n_starts=6, seed=2, progress=lambda d, n: seen.append((d, n)))
    _same(serial, spread)
    assert seen == [(k, 6) for k in range(1, 7)]
    assert abs(spread.theta["cl"].estimate - ORAL_TRUTH["cl"]) / ORAL_TRUTH["cl"] < 0.2


def test_a_pooled_chip_fit_on_the_cluster_equals_the_serial_fit(cluster, tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for chip, dose_um in (("low", 5.0), ("high", 100.0)):
        experiment = Experiment(dose_um, (1, 6, 24), observables=("drug_medium",))  # small: the test is the equality
        rows += lab_rows(chip, experiment, CHIP_TRUTH, 0.1, rng)
    path = write_lab_dataset(rows, tmp_path / "lab.csv")
    common = dict(method="pooled", estimate=["vmax", "km"], fix={"ps": 0.5, "kon": 0.05, "koff": 0.02}, n_starts=2)
    serial = fit_lab(path, **common)
    with compute_on(cluster):
        spread = fit_lab(path, **common)
    _same(serial, spread)
    assert spread.converged


def _slow_first(problem: float, x0: np.ndarray) -> tuple[float, int]:
    time.sleep(0.4 * (3 - int(x0[0])))  # the earliest start finishes last
    return problem if int(x0[0]) != 1 else problem + 1.0, int(x0[0])


def test_ties_go_to_the_earliest_start_in_any_finishing_order(cluster):
    starts = [np.array([float(k)]) for k in range(4)]
    assert best_of_starts(_slow_first, 5.0, starts, plan=cluster) == 0
    assert best_of_starts(_slow_first, 5.0, starts) == 0
    assert best_of_starts(lambda p, x: (np.inf, None), 0.0, starts) is None
