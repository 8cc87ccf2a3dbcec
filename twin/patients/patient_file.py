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

Errors name the file, the line (when read from a file), the key and what is accepted. The shape (types, unknown keys, finite numbers) is a
strict pydantic model: ``id = ["a"]``, ``abundance.CYP3A4 = nan`` or ``true`` as a weight
are refused, not coerced. Abundances are 0–10,000 pmol/mg; a co-medication's unbound
concentration is 0–10,000 µM and each drug is listed once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from twin.drugs import load_inhibitor
from twin.errors import TwinError
from twin.patients.covariates import Comedication, Patient, PatientError
from twin.patients.genotypes import parse_diplotype
from twin.toml_lines import TomlDocument, read_toml
from twin.units import parse_quantity, to_unit
from twin.userfile import read_user_text

CREATININE_G_PER_MOL = 113.12
_REQUIRED = {"age": "year", "weight": "kg", "serum_creatinine": "mg/dL"}
_EXAMPLES = {"age": "54 years", "weight": "72 kg", "serum_creatinine": "0.9 mg/dL"}
_KNOWN_KEYS = {"id", "sex", "genotype", "abundance", "comedication", *_REQUIRED}
MAX_ABUNDANCE_PMOL_PER_MG = 1e4  # ~70× the mean CYP3A4 abundance: beyond is a unit mistake
MAX_INHIBITOR_UM = 1e4  # 10 mM unbound at the liver is no patient
# what each key accepts, for the message when its type is wrong
_ACCEPTED = {
    "id": 'text, e.g. id = "P-001"',
    "sex": '"male" or "female"',
    "genotype": 'a table of star alleles, e.g. CYP2D6 = "*1/*4"',
    "abundance": "a number of pmol per mg protein",
    "comedication": '[[comedication]] entries with drug = "…" and unbound_concentration = "… µM"',
    **{key: f'a quantity such as "{example}"' for key, example in _EXAMPLES.items()},
}


# where a key is: "patient.toml line 7" from a file, the bare label for a dict from elsewhere
Where = Callable[[tuple[str | int, ...]], str]


class _Strict(BaseModel):
    # strict: TOML gives real types, so a bool as a number or a list as an id is a mistake, not a coercion
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class _ComedicationEntry(_Strict):
    drug: str = Field(min_length=1)
    unbound_concentration: str | float


class _PatientDocument(_Strict):
    id: str | int = ""
    sex: str = ""
    age: str | float | None = None
    weight: str | float | None = None
    serum_creatinine: str | float | None = None
    genotype: dict[str, str] = {}
    abundance: dict[str, float] = {}
    comedication: list[_ComedicationEntry] = []


def _shape(data: dict[str, Any], at: Where) -> _PatientDocument:
    unknown = sorted(map(str, set(data) - _KNOWN_KEYS))
    if unknown:
        raise PatientError(
            f"{at((unknown[0],))}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_KNOWN_KEYS))}"
        )
    try:
        return _PatientDocument.model_validate(data)
    except pydantic.ValidationError as exc:
        raise PatientError(_shape_message(exc.errors()[0], at)) from None


def _shape_message(error: Any, at: Where) -> str:
    loc = [str(part) for part in error["loc"] if isinstance(part, (str, int))]
    # drop pydantic's union branch names ("str", "float") from the location
    loc = [part for part in loc if part not in ("str", "int", "float")]
    where = at(tuple(error["loc"]))
    key = ".".join(loc)
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key {key}; see twin/patients/patient_file.py for the format"
    if error["type"] == "missing":
        return f"{where}: {key} is missing; {_ACCEPTED.get(loc[0], 'see the format')}"
    got = repr(error.get("input"))
    got = got if len(got) <= 60 else got[:57] + "…"
    return f"{where}: {key} must be {_ACCEPTED.get(loc[0], 'a valid value')}; got {got}"


def _to_unit(value: Any, unit: str, what: str, example: str) -> float:
    """A string must be a number with a unit; a bare number is already in ``unit``."""
    if isinstance(value, str):
        return to_unit(parse_quantity(value, what=what, example=example), unit, what=what)
    return to_unit(value, unit, what=what)


def _serum_creatinine_mg_per_dl(value: Any, where: str) -> float:
    quantity = parse_quantity(value, what=where, example="0.9 mg/dL") if isinstance(value, str) else value
    if hasattr(quantity, "dimensionality") and quantity.dimensionality == parse_quantity("1 µM").dimensionality:
        quantity = quantity * parse_quantity(f"{CREATININE_G_PER_MOL} g/mol")
    return to_unit(quantity, "mg/dL", what=where)


def _quantity(document: _PatientDocument, key: str, at: Where) -> float:
    where = at((key,))
    value = getattr(document, key)
    if value is None:
        raise PatientError(f'{where}: {key} is missing (e.g. {key} = "{_EXAMPLES[key]}")')
    if key == "serum_creatinine":
        return _serum_creatinine_mg_per_dl(value, f"{where}: {key}")
    return _to_unit(value, _REQUIRED[key], f"{where}: {key}", _EXAMPLES[key])


def _comedications(entries: list[_ComedicationEntry], at: Where) -> tuple[Comedication, ...]:
    found: list[Comedication] = []
    for i, entry in enumerate(entries):
        label = f"{at(('comedication', i, 'unbound_concentration'))}: comedication #{i + 1}"
        if entry.drug in (c.drug for c in found):
            raise PatientError(f"{label}: {entry.drug!r} is listed twice; give each co-medication once")
        load_inhibitor(entry.drug)  # fails early, naming the known drugs
        unbound_um = _to_unit(entry.unbound_concentration, "µM", label, "0.02 µM")
        if not 0 <= unbound_um <= MAX_INHIBITOR_UM:
            raise PatientError(
                f"{label}: unbound concentration {entry.unbound_concentration!r} is outside "
                f"0–{MAX_INHIBITOR_UM:g} µM; give the unbound concentration at the liver, e.g. "
                '"0.02 µM"'
            )
        found.append(Comedication(entry.drug, unbound_um))
    return tuple(found)


def _abundance(table: dict[str, float], at: Where) -> dict[str, float]:
    for enzyme, value in table.items():
        if not 0 <= value <= MAX_ABUNDANCE_PMOL_PER_MG:
            raise PatientError(
                f"{at(('abundance', enzyme))}: abundance.{enzyme} must be a number of pmol per mg protein, "
                f"0–{MAX_ABUNDANCE_PMOL_PER_MG:g}; got {value!r}"
            )
    return dict(table)


def _genotypes(table: dict[str, str], at: Where) -> dict:
    genotypes = {}
    for gene, text in table.items():
        try:
            genotypes[gene] = parse_diplotype(gene, text)
        except TwinError as exc:
            raise type(exc)(f"{at(('genotype', gene))}: {exc}") from None
    return genotypes


def patient_from_dict(data: dict[str, Any], where: str = "patient", doc: TomlDocument | None = None) -> Patient:
    """Build a patient; with ``doc`` (the file it came from) every message names the line."""

    def at(path: tuple[str | int, ...]) -> str:
        return doc.where(path) if doc is not None else where

    try:
        document = _shape(data, at)
        return Patient(
            id=str(document.id),
            age_years=_quantity(document, "age", at),
            sex=document.sex,  # type: ignore[arg-type]
            weight_kg=_quantity(document, "weight", at),
            scr_mg_per_dl=_quantity(document, "serum_creatinine", at),
            genotypes=_genotypes(document.genotype, at),
            abundance_pmol_per_mg=_abundance(document.abundance, at),
            comedications=_comedications(document.comedication, at),
        )
    except TwinError as exc:
        message = str(exc)
        raise type(exc)(message if message.startswith(where) else f"{at(_key_of(message))}: {message}") from None


def _key_of(message: str) -> tuple[str, ...]:
    """The key a range check of ``Patient`` complains about (its message starts with the name)."""
    for name, key in (("serum creatinine", "serum_creatinine"), ("sex", "sex"), ("age", "age"), ("weight", "weight")):
        if message.startswith(name):
            return (key,)
    return ("abundance",)


def load_patient(path: str | Path) -> Patient:
    """Read a patient file: not UTF-8, a directory, empty or over 1 MiB is one PatientError."""
    path = Path(path)
    text = read_user_text(path, "patient file", error=PatientError)
    doc = read_toml(text, path.name, error=PatientError)
    return patient_from_dict(doc.data, path.name, doc)
