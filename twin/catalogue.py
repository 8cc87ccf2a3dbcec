"""The model catalogue: every model of MODELS.md, found by name.

Each family of models lives in its own module exposing ``MODELS`` (a tuple of
``ModelSpec``); adding a model is adding it there.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module

from twin.errors import UnknownModelError
from twin.model import ModelSpec

_FAMILIES = ("twin.pk.models", "twin.chip.models")


@cache
def all_models() -> dict[str, ModelSpec]:
    models: dict[str, ModelSpec] = {}
    for family in _FAMILIES:
        for spec in import_module(family).MODELS:
            models[spec.name] = spec
    return models


def get_model(name: str) -> ModelSpec:
    models = all_models()
    try:
        return models[name]
    except KeyError:
        known = ", ".join(sorted(models)) or "(none yet)"
        raise UnknownModelError(f"unknown model {name!r}; choose one of: {known}") from None
