"""The drug library (TOML, one file per drug) and its loader; see ``library`` for the format."""

from twin.drugs.library import (
    Drug,
    DrugFileError,
    Inhibitor,
    UnknownDrugError,
    known_drugs,
    load_drug,
    load_inhibitor,
)

__all__ = ["Drug", "DrugFileError", "Inhibitor", "UnknownDrugError", "known_drugs", "load_drug", "load_inhibitor"]
