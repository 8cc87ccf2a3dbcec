"""chip models of the catalogue."""

from twin.model import ModelSpec

MODELS: tuple[ModelSpec, ...] = ()
