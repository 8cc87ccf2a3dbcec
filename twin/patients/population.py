"""Virtual populations: covariates from stated distributions, log-normal BSV, exposure per block.

Patients are simulated in fixed blocks of ``BLOCK`` patients; block b draws from
``SeedSequence(seed, spawn_key=(b,))`` (what ``SeedSequence(seed).spawn(...)[b]`` gives),
so patient i's numbers depend only on (seed, i) — never on chunk size, worker or order.

Default distributions (``PopulationSpec``; ILLUSTRATIVE adult values, rounded — state your
own for a real study): sex 50 % female; age uniform 18–80 y; weight log-normal, median
80 kg (men) / 68 kg (women), CV 18 %, clipped to 40–150 kg; serum creatinine log-normal,
median 0.95 / 0.75 mg/dL, CV 20 %, clipped to 0.4–4 mg/dL; CYP2D6 and CYP2C19 alleles drawn
independently by allele frequency (approximate European frequencies, CPIC tables);
between-subject variability log-normal with CV 30 % (CLint and CLr), 20 % (V), 40 % (ka).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from twin.drugs import Drug
from twin.errors import InvalidValueError
from twin.patients.clearance import enzyme_capacity, individual_pk, inhibition_divisors
from twin.patients.covariates import Comedication, cockcroft_gault_ml_per_min
from twin.patients.dosing import Target, toxicity_margin
from twin.patients.exposure import exposure
from twin.patients.genotypes import GENE_VALUES, NORMAL_SCORE, allele_value, parse_allele
from twin.patients.regimen import Regimen
from twin.patients.summaries import StreamingSummary

BLOCK = 8192

ALLELE_FREQUENCIES = {  # approximate, European ancestry, rounded (CPIC frequency tables)
    "CYP2D6": {
        "*1": 0.35,
        "*2": 0.27,
        "*4": 0.18,
        "*41": 0.09,
        "*5": 0.03,
        "*9": 0.02,
        "*10": 0.02,
        "*17": 0.005,
        "*29": 0.005,
        "*3": 0.01,
        "*6": 0.01,
        "*1x2": 0.005,
        "*2x2": 0.005,
    },
    "CYP2C19": {"*1": 0.62, "*2": 0.15, "*3": 0.005, "*17": 0.225},
}


def _log_normal_sigma(cv: float) -> float:
    return float(np.sqrt(np.log1p(cv**2)))


@dataclass(frozen=True)
class PopulationSpec:
    female_fraction: float = 0.5
    age_range_years: tuple[float, float] = (18.0, 80.0)
    weight_median_kg: Mapping[str, float] = field(default_factory=lambda: {"male": 80.0, "female": 68.0})
    weight_cv: float = 0.18
    weight_range_kg: tuple[float, float] = (40.0, 150.0)
    scr_median_mg_per_dl: Mapping[str, float] = field(default_factory=lambda: {"male": 0.95, "female": 0.75})
    scr_cv: float = 0.20
    scr_range_mg_per_dl: tuple[float, float] = (0.4, 4.0)
    allele_frequencies: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: ALLELE_FREQUENCIES)
    cv_cl: float = 0.30
    cv_v: float = 0.20
    cv_ka: float = 0.40
    comedications: tuple[Comedication, ...] = ()

    def __post_init__(self) -> None:
        for gene, frequencies in self.allele_frequencies.items():
            total = sum(frequencies.values())
            if abs(total - 1.0) > 1e-6:
                raise InvalidValueError(f"{gene} allele frequencies add up to {total:.6g}, not 1")
            for allele in frequencies:
                parse_allele(gene, allele)  # an unknown gene or allele fails here, naming the known ones


def _allele_values(gene: str, frequencies: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """(allele values × copies, frequencies) in a fixed order."""
    values = [allele_value(gene, parse_allele(gene, name)) for name in frequencies]
    return np.array(values), np.array(list(frequencies.values()))


def sample_covariates(spec: PopulationSpec, rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
    """Covariates for ``size`` patients, drawn in a fixed order from ``rng``."""
    female = rng.random(size) < spec.female_fraction
    age = rng.uniform(*spec.age_range_years, size)
    weight_median = np.where(female, spec.weight_median_kg["female"], spec.weight_median_kg["male"])
    weight = np.clip(
        weight_median * np.exp(_log_normal_sigma(spec.weight_cv) * rng.standard_normal(size)), *spec.weight_range_kg
    )
    scr_median = np.where(female, spec.scr_median_mg_per_dl["female"], spec.scr_median_mg_per_dl["male"])
    scr = np.clip(
        scr_median * np.exp(_log_normal_sigma(spec.scr_cv) * rng.standard_normal(size)), *spec.scr_range_mg_per_dl
    )
    covariates = {"female": female, "age_years": age, "weight_kg": weight, "scr_mg_per_dl": scr}
    for gene in sorted(spec.allele_frequencies):
        values, frequencies = _allele_values(gene, spec.allele_frequencies[gene])
        alleles = rng.choice(len(values), size=(size, 2), p=frequencies / frequencies.sum())
        covariates[f"activity_{gene}"] = values[alleles].sum(axis=1) / NORMAL_SCORE
    return covariates


@dataclass
class PopulationAccumulator:
    """Everything a chunk reports: streaming summaries per metric and exact counts."""

    summaries: dict[str, StreamingSummary] = field(default_factory=dict)
    n: int = 0
    attained: int = 0
    margin_below_1: int = 0

    def add(self, metrics: Mapping[str, np.ndarray]) -> None:
        for name, values in metrics.items():
            self.summaries.setdefault(name, StreamingSummary()).add(values)

    def merge(self, other: "PopulationAccumulator") -> None:
        for name, summary in other.summaries.items():
            self.summaries.setdefault(name, StreamingSummary()).merge(summary)
        self.n += other.n
        self.attained += other.attained
        self.margin_below_1 += other.margin_below_1


def simulate_block(
    drug: Drug, regimen: Regimen, spec: PopulationSpec, target: Target | None, seed: int, block: int, size: int
) -> PopulationAccumulator:
    """Simulate block ``block`` (``size`` ≤ BLOCK patients) and summarise it."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(block,)))
    covariates = sample_covariates(spec, rng, size)
    eta = rng.standard_normal((3, size)) * np.array(
        [[_log_normal_sigma(cv)] for cv in (spec.cv_cl, spec.cv_v, spec.cv_ka)]
    )
    activity = {gene: covariates[f"activity_{gene}"] for gene in GENE_VALUES if f"activity_{gene}" in covariates}
    capacity = enzyme_capacity(drug.fm, activity, inhibition_divisors(spec.comedications, drug.fm))
    crcl = cockcroft_gault_ml_per_min(
        covariates["age_years"], covariates["weight_kg"], covariates["scr_mg_per_dl"], covariates["female"]
    )
    pk = individual_pk(drug, covariates["weight_kg"], crcl, capacity, eta_cl=eta[0], eta_v=eta[1], eta_ka=eta[2])
    result = exposure(pk, regimen)
    metrics = {name: getattr(result, name) for name in result.__dataclass_fields__}
    metrics.update(cl_l_per_h=pk.cl_l_per_h, crcl_ml_per_min=crcl)
    if regimen.route == "oral":
        metrics["f_oral"] = pk.f_oral
    accumulator = PopulationAccumulator(n=size)
    margin = toxicity_margin(drug.ec50_mg_per_l, result)
    if margin is not None:
        metrics["toxicity_margin"] = margin
        accumulator.margin_below_1 = int(np.count_nonzero(margin < 1.0))
    if target is not None:
        accumulator.attained = int(np.count_nonzero(target.attained(result)))
    accumulator.add(metrics)
    return accumulator


def simulate_chunk(
    drug: Drug,
    regimen: Regimen,
    spec: PopulationSpec,
    target: Target | None,
    seed: int,
    n_total: int,
    first_block: int,
    n_blocks: int,
) -> PopulationAccumulator:
    """Blocks ``first_block``… of the population, one at a time (what a worker runs)."""
    accumulator = PopulationAccumulator()
    for block in range(first_block, first_block + n_blocks):
        size = min(BLOCK, n_total - block * BLOCK)
        if size > 0:
            accumulator.merge(simulate_block(drug, regimen, spec, target, seed, block, size))
    return accumulator
