"""Organ-chip models of the catalogue (MODELS.md §2), in chip units: h, nmol, mL, µM, mL/h.

``multi_organ`` is registered with all four modules; other selections come from
``twin.chip.multi_organ.multi_organ_spec(modules=...)``.
"""

from twin.chip.liver import LIVER_CHIP
from twin.chip.multi_organ import MULTI_ORGAN
from twin.model import ModelSpec

MODELS: tuple[ModelSpec, ...] = (LIVER_CHIP, MULTI_ORGAN)
