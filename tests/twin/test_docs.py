"""docs/models.md is generated from the catalogue: it must be exactly what twin.docs prints."""

from __future__ import annotations

from pathlib import Path

from twin.catalogue import all_models
from twin.docs import model_reference_markdown

PAGE = Path(__file__).resolve().parents[2] / "docs" / "models.md"


def test_models_page_is_up_to_date() -> None:
    assert PAGE.read_text() == model_reference_markdown(), (
        "docs/models.md is out of date: run `.venv/bin/python -m twin.docs > docs/models.md` (do not edit it by hand)"
    )


def test_page_covers_every_model_parameter_and_equation() -> None:
    page = model_reference_markdown()
    for spec in all_models().values():
        assert f"## `{spec.name}`" in page and spec.description in page and f"Version {spec.version}" in page
        for item in (*spec.states, *spec.parameters, *spec.constants, *spec.observables):
            assert f"| `{item.name}` |" in page
        for state, formula in spec.odes.items():
            assert f"d({state})/dt" in page and f"= {formula}" in page
        for name, formula in spec.assignments.items():
            assert f"{name} " in page and f"= {formula}" in page
