"""Chip fit → patient (#14 item 1): the IVIVE chain over posterior draws, with every factor's source."""

from twin.translate.chain import (
    DISPERSION_NUMBER,
    LIVER_MODELS,
    METRICS,
    Factor,
    Subjects,
    chain_factors,
    clint_u_per_kg_l_per_h,
    hepatic_blood_clearance,
    translate,
)

__all__ = [
    "DISPERSION_NUMBER",
    "LIVER_MODELS",
    "METRICS",
    "Factor",
    "Subjects",
    "chain_factors",
    "clint_u_per_kg_l_per_h",
    "hepatic_blood_clearance",
    "translate",
]
