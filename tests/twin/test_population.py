"""Virtual populations: reproducible across chunk sizes and executors (local processes, Dask)."""

from __future__ import annotations

import numpy as np
import pytest

from twin.drugs import load_drug
from twin.errors import InvalidValueError
from twin.patients import PopulationSpec, Target, parse_regimen, run_population
from twin.patients.genotypes import GenotypeError
from twin.patients.population import BLOCK, sample_covariates
from twin.patients.summaries import RELATIVE_RESOLUTION, StreamingSummary

N = 3 * BLOCK + 123  # four blocks, the last one partial
REGIMEN = parse_regimen("100 mg q12h x14 oral")
TARGET = Target("auc_tau_ss", 0.3, 1.0)


def _run(**options):
    return run_population(load_drug("example_chip_compound"), REGIMEN, N, seed=7, target=TARGET, **options)


def _same(a, b) -> None:
    assert a.to_dict() == b.to_dict()
    for name, summary in a.accumulator.summaries.items():
        np.testing.assert_array_equal(summary.counts, b.accumulator.summaries[name].counts)


@pytest.fixture(scope="module")
def inline():
    return _run(max_workers=1, chunk_size=N)


def test_summary_is_independent_of_chunk_size(inline):
    seen = []
    _same(inline, _run(max_workers=1, chunk_size=1, progress=lambda done, total: seen.append((done, total))))
    _same(inline, _run(max_workers=1, chunk_size=2 * BLOCK))
    assert seen[-1] == (N, N) and len(seen) == 4


def test_local_process_pool_and_dask_give_identical_summaries(inline):
    distributed = pytest.importorskip("distributed")
    _same(inline, _run(max_workers=2, chunk_size=BLOCK))
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        with distributed.Client(cluster) as client:
            _same(inline, _run(dask=client, chunk_size=BLOCK))
        _same(inline, _run(dask=cluster.scheduler_address, chunk_size=2 * BLOCK))


def test_a_different_seed_gives_a_different_population(inline):
    other = run_population(load_drug("example_chip_compound"), REGIMEN, N, seed=8, target=TARGET, max_workers=1)
    assert other.to_dict()["metrics"] != inline.to_dict()["metrics"]


def test_population_outputs_are_plausible(inline):
    out = inline.to_dict()
    assert out["n"] == N and 0 < out["target"]["probability_of_target_attainment"] < 1
    metrics = out["metrics"]
    assert metrics["cmax"]["p5"] < metrics["cmax"]["p50"] < metrics["cmax"]["p95"]
    assert metrics["toxicity_margin"]["min"] > 0 and 0 <= out["fraction_toxicity_margin_below_1"] <= 1
    assert metrics["f_oral"]["p5"] < metrics["f_oral"]["p95"] <= metrics["f_oral"]["max"] <= 0.9  # F ≤ Fa


def test_covariate_distributions_follow_the_spec():
    covariates = sample_covariates(PopulationSpec(), np.random.default_rng(0), 50_000)
    female = covariates["female"]
    assert abs(female.mean() - 0.5) < 0.01
    assert np.median(covariates["weight_kg"][~female]) == pytest.approx(80, rel=0.02)
    assert np.median(covariates["weight_kg"][female]) == pytest.approx(68, rel=0.02)
    poor = (covariates["activity_CYP2D6"] == 0).mean()
    assert poor == pytest.approx(0.23**2, abs=0.01)  # no-function allele frequency 0.18+0.03+0.01+0.01


def test_streaming_quantiles_are_within_the_stated_resolution():
    values = np.random.default_rng(3).lognormal(0.0, 1.5, 100_000)
    summary = StreamingSummary()
    for part in np.array_split(values, 7):
        summary.add(part)
    for q in (0.01, 0.05, 0.5, 0.95, 0.99):
        assert summary.quantile(q) == pytest.approx(np.quantile(values, q), rel=RELATIVE_RESOLUTION)
    assert summary.mean == pytest.approx(values.mean(), rel=1e-12)
    assert (summary.minimum, summary.maximum, summary.n) == (values.min(), values.max(), values.size)


def test_bad_population_inputs():
    with pytest.raises(InvalidValueError, match="at least 1"):
        run_population(load_drug("midazolam"), REGIMEN, 0)
    with pytest.raises(InvalidValueError, match="add up to"):
        PopulationSpec(allele_frequencies={"CYP2C19": {"*1": 0.5, "*2": 0.4}})
    with pytest.raises(GenotypeError, match="known alleles"):
        PopulationSpec(allele_frequencies={"CYP2C19": {"*1": 0.5, "*99": 0.5}})
