"""Read a patient from a TOML file.

Format (quantities are strings with units; bare numbers are in the unit shown)::

    id = "P-001"                      # optional
    age = "54 years"                  # years
    sex = "female"                    # "male" or "female"
    weight = "72 kg"                  # kg
    serum_creatinine = "0.9 mg/dL"    # mg/dL; µmol/L also read (creatinine 113.12 g/mol)

    [genotype]                        # optional; CPIC star alleles
    CYP2D6 = "*1/*4"                  # duplications like "*1x2/*4"
    CYP2C19 = "*1/*17"

    [abundance]                       # optional; pmol enzyme per mg microsomal protein
    CYP3A4 = 95.0

    [[comedication]]                  # optional, repeatable; competitive inhibitors
    drug = "ketoconazole"             # a library entry with a [ki] table
    unbound_concentration = "0.02 µM"

Errors name the file and the key.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from twin.drugs import load_inhibitor
from twin.errors import TwinError
from twin.patients.covariates import Comedication, Patient, PatientError
from twin.patients.genotypes import parse_diplotype
from twin.units import Q_, to_unit

CREATININE_G_PER_MOL = 113.12
_REQUIRED = {"age": "year", "weight": "kg", "serum_creatinine": "mg/dL"}
_EXAMPLES = {"age": "54 years", "weight": "72 kg", "serum_creatinine": "0.9 mg/dL"}
_KNOWN_KEYS = {"id", "sex", "genotype", "abundance", "comedication", *_REQUIRED}


def _serum_creatinine_mg_per_dl(value: Any, where: str) -> float:
    quantity = Q_(value) if isinstance(value, str) else value
    if hasattr(quantity, "dimensionality") and quantity.dimensionality == Q_("1 µM").dimensionality:
        quantity = quantity * Q_(CREATININE_G_PER_MOL, "g/mol")
    return to_unit(quantity, "mg/dL", what=where)


def _quantity(data: dict[str, Any], key: str, where: str) -> float:
    if key not in data:
        raise PatientError(f"{where}: {key} is missing (e.g. {key} = \"{_EXAMPLES[key]}\")")
    if key == "serum_creatinine":
        return _serum_creatinine_mg_per_dl(data[key], f"{where}: {key}")
    return to_unit(data[key], _REQUIRED[key], what=f"{where}: {key}")


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    table = data.get(key, {})
    if not isinstance(table, dict):
        raise PatientError(f"{where}: [{key}] must be a table")
    return table


def _comedications(data: dict[str, Any], where: str) -> tuple[Comedication, ...]:
    entries = data.get("comedication", [])
    if not isinstance(entries, list):
        raise PatientError(f"{where}: write co-medications as [[comedication]] entries")
    found = []
    for i, entry in enumerate(entries):
        label = f"{where}: comedication #{i + 1}"
        if not isinstance(entry, dict) or "drug" not in entry or "unbound_concentration" not in entry:
            raise PatientError(f"{label} needs drug = \"…\" and unbound_concentration = \"… µM\"")
        load_inhibitor(str(entry["drug"]))  # fails early, naming the known drugs
        found.append(Comedication(str(entry["drug"]), to_unit(entry["unbound_concentration"], "µM", what=label)))
    return tuple(found)


def _abundance(table: dict[str, Any], where: str) -> dict[str, float]:
    for enzyme, value in table.items():
        if not isinstance(value, (int, float)) or value < 0:
            raise PatientError(f"{where}: abundance.{enzyme} must be a number of pmol per mg protein; got {value!r}")
    return {enzyme: float(value) for enzyme, value in table.items()}


def patient_from_dict(data: dict[str, Any], where: str = "patient") -> Patient:
    unknown = set(data) - _KNOWN_KEYS
    if unknown:
        raise PatientError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
                           f"known: {', '.join(sorted(_KNOWN_KEYS))}")
    try:
        genotypes = {gene: parse_diplotype(gene, text) for gene, text in _table(data, "genotype", where).items()}
        return Patient(
            id=str(data.get("id", "")), age_years=_quantity(data, "age", where), sex=data.get("sex", ""),
            weight_kg=_quantity(data, "weight", where),
            scr_mg_per_dl=_quantity(data, "serum_creatinine", where), genotypes=genotypes,
            abundance_pmol_per_mg=_abundance(_table(data, "abundance", where), where),
            comedications=_comedications(data, where),
        )
    except TwinError as exc:
        message = str(exc)
        raise type(exc)(message if message.startswith(where) else f"{where}: {message}") from None


def load_patient(path: str | Path) -> Patient:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PatientError(f"patient file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise PatientError(f"{path.name}: not valid TOML ({exc})") from None
    return patient_from_dict(data, path.name)
