"""Every picture the README shows is in the repository (docs/img/, made by scripts/screenshots.py)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def test_every_image_the_readme_references_exists():
    referenced = IMAGE.findall((REPO / "README.md").read_text(encoding="utf-8"))
    assert any(p.endswith("panel-runs.png") for p in referenced)  # the Runs page is among them
    missing = [p for p in referenced if not p.startswith("http") and not (REPO / p).is_file()]
    assert not missing, f"README references missing images: {missing}; fix: run scripts/screenshots.py"
    assert all((REPO / p).stat().st_size > 1000 for p in referenced if not p.startswith("http"))
