"""From a model (name, spec or system) to the numerics that simulate it."""

from __future__ import annotations

from twin.chip.compiled import compile_system
from twin.chip.liver import LIVER_SYSTEM
from twin.chip.multi_organ import drug_states_of, media_of
from twin.chip.system import ChipSystem
from twin.errors import UnknownModelError
from twin.model import ModelSpec

Model = str | ModelSpec | ChipSystem


_COMPILED: dict[str, ChipSystem] = {}


def _compiled(spec: ModelSpec) -> ChipSystem:
    # specs hold dicts, so they are not hashable: cache by name, and check it is the same spec
    cached = _COMPILED.get(spec.name)
    if cached is None or cached.spec != spec:
        cached = _COMPILED[spec.name] = compile_system(spec, media_of(spec), drug_states_of(spec))
    return cached


def system_for(model: Model) -> ChipSystem:
    """``liver_chip`` uses its hand-written numerics; multi-organ specs are compiled from their strings."""
    if isinstance(model, ChipSystem):
        return model
    if isinstance(model, str):
        from twin.catalogue import get_model

        model = get_model(model)
    if model.name == LIVER_SYSTEM.spec.name:
        return LIVER_SYSTEM
    if model.name.startswith("multi_organ"):
        return _compiled(model)
    raise UnknownModelError(f"{model.name!r} is not an organ-chip model; use liver_chip or multi_organ")
