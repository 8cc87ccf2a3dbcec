"""Run a virtual population in chunks: in this process, a LocalCluster or a Dask scheduler (``twin.compute``).

At most ``2 × workers`` chunks are in flight and each comes back as a fixed-size summary,
so memory stays bounded however large N is. Merging is exact and order-free (see
``summaries``), and patients are seeded by block (see ``population``): the summary is the
same for any chunk size, worker count or executor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from twin.compute import ComputePlan, map_unordered, open_pool
from twin.drugs import Drug
from twin.errors import InvalidValueError
from twin.patients.dosing import Target
from twin.patients.population import BLOCK, PopulationAccumulator, PopulationSpec, simulate_chunk
from twin.patients.regimen import Regimen

Progress = Callable[[int, int], None]  # (patients done, patients in total)


@dataclass
class PopulationSummary:
    drug: str
    regimen: str
    seed: int
    accumulator: PopulationAccumulator
    target: Target | None

    @property
    def n(self) -> int:
        return self.accumulator.n

    @property
    def pta(self) -> float | None:
        return None if self.target is None else self.accumulator.attained / self.n

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "drug": self.drug,
            "regimen": self.regimen,
            "n": self.n,
            "seed": self.seed,
            "metrics": {k: s.describe() for k, s in sorted(self.accumulator.summaries.items())},
        }
        if self.target is not None:
            out["target"] = {
                "metric": self.target.metric,
                "low": self.target.low,
                "high": self.target.high,
                "probability_of_target_attainment": self.pta,
            }
        if "toxicity_margin" in self.accumulator.summaries:
            out["fraction_toxicity_margin_below_1"] = self.accumulator.margin_below_1 / self.n
        return out


def run_population(
    drug: Drug,
    regimen: Regimen,
    n: int,
    *,
    seed: int = 0,
    spec: PopulationSpec | None = None,
    target: Target | None = None,
    chunk_size: int = 8 * BLOCK,
    dask: Any = None,
    max_workers: int | None = None,
    progress: Progress | None = None,
) -> PopulationSummary:
    """Exposure, PTA and toxicity-margin summaries of ``n`` virtual patients.

    ``chunk_size`` (patients per task) is rounded up to whole blocks of ``BLOCK``;
    ``dask`` is a ``distributed.Client`` or a scheduler address; without it ``max_workers``
    ≥ 2 starts a LocalCluster of that many processes, and None or 1 runs in this process.
    """
    if n < 1:
        raise InvalidValueError(f"population size must be at least 1; got {n}")
    if chunk_size < 1:
        raise InvalidValueError(f"chunk size must be at least 1; got {chunk_size}")
    spec = spec or PopulationSpec()
    blocks_per_chunk = -(-chunk_size // BLOCK)
    n_blocks = -(-n // BLOCK)
    chunks = (
        (drug, regimen, spec, target, seed, n, start, min(blocks_per_chunk, n_blocks - start))
        for start in range(0, n_blocks, blocks_per_chunk)
    )
    total = PopulationAccumulator()
    with open_pool(ComputePlan(dask, max_workers)) as pool:
        for part in map_unordered(pool, simulate_chunk, chunks):
            total.merge(part)
            if progress is not None:
                progress(total.n, n)
    return PopulationSummary(drug.name, str(regimen), seed, total, target)
