"""Scale-out (issue #13 item 5): the virtual population on a real Dask scheduler and worker.

The test starts `dask scheduler` and `dask worker` as subprocesses on 127.0.0.1 (bounded
waits, stopped after), runs `chiptwin population --scheduler tcp://…` and checks the summary
equals the in-process one to 1e-9 on a fixed seed. An unreachable scheduler and a malformed
address are refused in one line with exit 2.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.net import free_loopback_port
from twin.compute import ComputeError, ComputePlan, map_unordered, open_pool
from ui.cli.app import app

DASK = Path(sys.executable).parent / "dask"
POPULATION = ["population", "--drug", "example_chip_compound", "--regimen", "100 mg q12h x14 oral"]
POPULATION += ["--n", "3000", "--seed", "11", "--target-auc", "0.3:1.0", "--json"]
START_LIMIT_S = 60  # a scheduler and a worker on a busy 2-core machine start in a few seconds
runner = CliRunner()


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory) -> Iterator[str]:
    """A real `dask scheduler` with one `dask worker` (one process, one thread) on loopback."""
    import distributed

    logs = tmp_path_factory.mktemp("dask")
    port = free_loopback_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler_log, worker_log = (logs / "scheduler.log").open("w"), (logs / "worker.log").open("w")
    common = {"stdout": subprocess.DEVNULL, "cwd": logs}
    scheduler = subprocess.Popen(
        [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--dashboard-address", ":0"],
        stderr=scheduler_log,
        **common,
    )
    worker = subprocess.Popen(
        [str(DASK), "worker", address, "--nworkers", "1", "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"],
        stderr=worker_log,
        **common,
    )
    try:
        with distributed.Client(address, timeout=START_LIMIT_S) as client:
            client.wait_for_workers(1, timeout=START_LIMIT_S)
        yield address
    finally:
        _stop(worker)
        _stop(scheduler)
        scheduler_log.close()
        worker_log.close()


def _metrics(output: str) -> dict:
    return json.loads(output)


def _close(a, b, path: str = "") -> None:
    """Equal structure; numbers equal to 1e-9 (relative)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b)), path
    else:
        assert a == b, path


def test_population_on_a_dask_scheduler_equals_the_run_in_this_process(scheduler: str) -> None:
    here = runner.invoke(app, POPULATION)
    assert here.exit_code == 0, here.output
    remote = runner.invoke(app, [*POPULATION, "--scheduler", scheduler])
    assert remote.exit_code == 0, remote.output
    local, cluster = _metrics(here.stdout), _metrics(remote.stdout)
    assert local["n"] == 3000
    _close(local, cluster)


def test_map_unordered_runs_every_chunk_on_the_cluster(scheduler: str) -> None:
    with open_pool(ComputePlan(scheduler=scheduler)) as pool:
        assert pool.workers == 1
        results = sorted(map_unordered(pool, pow, ((k, 2) for k in range(10))))
    assert results == [k * k for k in range(10)]


def test_an_unreachable_scheduler_is_one_line_naming_the_address() -> None:
    address = f"tcp://127.0.0.1:{free_loopback_port()}"  # nothing listens there
    started = time.monotonic()
    with pytest.raises(ComputeError, match=rf"cannot reach the Dask scheduler at {address}.*dask scheduler"):
        with open_pool(ComputePlan(scheduler=address), connect_timeout_s=2):
            pass
    assert time.monotonic() - started < 60  # bounded by the timeout, not hung
    result = runner.invoke(app, [*POPULATION, "--scheduler", "localhost:8786"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a Dask scheduler address" in lines[0] and "tcp://HOST:PORT" in lines[0]


def test_a_worker_count_below_one_is_refused() -> None:
    with pytest.raises(ComputeError, match="--workers 0"):
        with open_pool(ComputePlan(workers=0)):
            pass
