"""The three ChipTwin features, read from their FDL files (the SiLA 2 feature definitions clients fetch)."""

from __future__ import annotations

from pathlib import Path

from sila2.framework import Feature

FDL_DIR = Path(__file__).resolve().parent / "features"


def load(identifier: str) -> Feature:
    """The feature ``identifier`` (RunQueue, Channels, ProposalDecisions) from its FDL file."""
    return Feature((FDL_DIR / f"{identifier}.sila.xml").read_text(encoding="utf-8"))
