"""CPIC activity scores and phenotypes for CYP2D6 and CYP2C19 (MODELS.md §3).

CYP2D6: allele values *1, *2 = 1; *9, *17, *29, *41 = 0.5; *10 = 0.25; *3, *4, *5, *6 = 0;
a duplication ``*1x2`` is the allele value times the copy number. The diplotype's score is
the sum; phenotype 0 PM, 0.25–1 IM, 1.25–2.25 NM, > 2.25 UM.

CYP2C19 has no CPIC activity score; phenotypes follow the allele functions (*2, *3 no
function, *17 increased): PM *2/*2, IM one no-function allele, NM *1/*1, RM *1/*17,
UM *17/*17. For the clearance the twin still needs a number, so it scores *1 = 1,
no-function = 0 and *17 = 1.5 (ASSUMPTION: the gain of *17 is modest and substrate
dependent; change ``CYP2C19_VALUES`` to taste).

An enzyme's share of clearance scales with ``activity_ratio`` = score / normal score
(2, the score of *1/*1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from twin.errors import TwinError

NORMAL_SCORE = 2.0  # *1/*1: the normal metaboliser both genes' clearance is quoted for

CYP2D6_VALUES = {
    "*1": 1.0,
    "*2": 1.0,
    "*9": 0.5,
    "*17": 0.5,
    "*29": 0.5,
    "*41": 0.5,
    "*10": 0.25,
    "*3": 0.0,
    "*4": 0.0,
    "*5": 0.0,
    "*6": 0.0,
}
CYP2C19_VALUES = {"*1": 1.0, "*2": 0.0, "*3": 0.0, "*17": 1.5}
GENE_VALUES = {"CYP2D6": CYP2D6_VALUES, "CYP2C19": CYP2C19_VALUES}

_ALLELE = re.compile(r"^(\*\d+)(?:[xX](\d+))?$")


class GenotypeError(TwinError):
    """A gene or allele the twin does not know, or a diplotype it cannot read."""


@dataclass(frozen=True)
class Allele:
    name: str  # e.g. "*1"
    copies: int = 1

    def __str__(self) -> str:
        return self.name if self.copies == 1 else f"{self.name}x{self.copies}"


@dataclass(frozen=True)
class Diplotype:
    gene: str
    alleles: tuple[Allele, Allele]

    def __str__(self) -> str:
        return f"{self.alleles[0]}/{self.alleles[1]}"


def _values(gene: str) -> dict[str, float]:
    try:
        return GENE_VALUES[gene]
    except KeyError:
        raise GenotypeError(f"unknown gene {gene!r}; the twin knows: {', '.join(GENE_VALUES)}") from None


def parse_allele(gene: str, text: str) -> Allele:
    match = _ALLELE.match(text.strip())
    values = _values(gene)
    if match is None or match.group(1) not in values:
        raise GenotypeError(
            f"{gene}: unknown allele {text.strip()!r}; known alleles: {', '.join(values)}"
            + (" (a duplication is written like *1x2)" if gene == "CYP2D6" else "")
        )
    copies = int(match.group(2) or 1)
    if copies < 1 or (copies > 1 and gene != "CYP2D6"):
        raise GenotypeError(f"{gene}: {text.strip()!r}: copy numbers are only read for CYP2D6, and must be ≥ 1")
    return Allele(match.group(1), copies)


def allele_value(gene: str, allele: Allele) -> float:
    """Function of one allele, copies included (a CYP2D6 *1x2 counts 2)."""
    return _values(gene)[allele.name] * allele.copies


def parse_diplotype(gene: str, text: str) -> Diplotype:
    """Read ``"*1/*4"`` (or ``"*1x2/*41"``) for ``gene``."""
    parts = str(text).split("/")
    if len(parts) != 2:
        raise GenotypeError(f"{gene}: cannot read diplotype {text!r}; write two alleles like '*1/*4'")
    return Diplotype(gene, (parse_allele(gene, parts[0]), parse_allele(gene, parts[1])))


def activity_score(diplotype: Diplotype) -> float:
    return sum(allele_value(diplotype.gene, a) for a in diplotype.alleles)


def activity_ratio(diplotype: Diplotype) -> float:
    """Activity relative to a normal metaboliser (score / 2)."""
    return activity_score(diplotype) / NORMAL_SCORE


def cyp2d6_phenotype_from_score(score: float) -> str:
    if score == 0:
        return "PM"
    if score <= 1.0:
        return "IM"
    if score <= 2.25:
        return "NM"
    return "UM"


def _cyp2c19_phenotype(diplotype: Diplotype) -> str:
    functions = sorted(
        "none" if CYP2C19_VALUES[a.name] == 0 else ("increased" if a.name == "*17" else "normal")
        for a in diplotype.alleles
    )
    if functions == ["none", "none"]:
        return "PM"
    if "none" in functions:
        return "IM"
    return {("normal", "normal"): "NM", ("increased", "normal"): "RM", ("increased", "increased"): "UM"}[
        tuple(functions)
    ]  # type: ignore[index]


def phenotype(diplotype: Diplotype) -> str:
    """PM, IM, NM, RM (CYP2C19 only) or UM."""
    if diplotype.gene == "CYP2D6":
        return cyp2d6_phenotype_from_score(activity_score(diplotype))
    return _cyp2c19_phenotype(diplotype)
