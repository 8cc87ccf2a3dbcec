"""What `chiptwin export` can write, and how (light: the CLI reads these before any table is built)."""

from __future__ import annotations

from enum import StrEnum


class What(StrEnum):
    ASSAYS = "assays"
    DOSES = "doses"
    SAMPLES = "samples"
    READINGS = "readings"
    LAB = "lab"  # the run's lab dataset: what `chiptwin fit` and the calibrate steps read


class Format(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"
