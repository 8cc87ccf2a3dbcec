"""Published in-vitro intrinsic clearance of a library drug, scaled to an unbound CLint per kg.

A drug file may carry an ``[in_vitro]`` table (see nicotine.toml, propranolol.toml) in one
of two forms, each entry ``{ value, unit, source }``:

- ``clint_scaled`` — an in-vitro CLint already scaled to the body (mL/min/kg), as Obach 1997
  and hepatocyte compilations report it; optional ``fu_inc`` (binding in the incubation).
- ``vmax`` (nmol/h/mg microsomal protein) and ``km`` (µM) of one pathway, with
  ``pathway_fraction`` (that pathway's share of hepatic clearance) and optional ``fu_inc``:

      CLint,u (mL/min/kg) = vmax/km × MPPGL × liver g/kg ÷ pathway_fraction ÷ fu_inc ÷ 60

MPPGL is 32 mg microsomal protein per g liver (Barter et al. 2007;
shared/reference/ivive/README), liver weight 25.7 g/kg (MODELS.md §3).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twin.drugs import DrugFileError, known_drugs
from twin.drugs.library import LIBRARY
from twin.ivive import DEFAULT_SCALING
from twin.units import Q_, to_unit

MICROSOMAL_PROTEIN_MG_PER_G = 32.0  # Barter et al. 2007 (shared/reference/ivive README)


@dataclass(frozen=True)
class InVitroClearance:
    """One drug's published in-vitro CLint as an unbound human CLint per kg body weight."""

    drug: str
    system: str  # "microsomes" or "hepatocytes"
    clint_u_ml_min_per_kg: float
    sources: tuple[str, ...]


def drug_file(name: str, folder: Path = LIBRARY) -> tuple[Path, dict[str, Any]]:
    """The parsed TOML of a library drug (the library's loader keeps only what the twin uses)."""
    path = folder / f"{name.strip().lower()}.toml"
    if name.strip().lower() not in known_drugs(folder):
        raise DrugFileError(f"unknown drug {name!r}; the library has: {', '.join(known_drugs(folder))}")
    try:
        return path, tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise DrugFileError(f"{path.name}: not valid TOML ({exc})") from None


def entry_value(path: Path, table: dict[str, Any], where: str, key: str, unit: str) -> tuple[float, str]:
    """(value in ``unit``, source) of a ``{ value, unit, source }`` entry; errors name file and key."""
    entry = table.get(key)
    if not isinstance(entry, dict) or "value" not in entry or "unit" not in entry:
        raise DrugFileError(f'{path.name}: {where}.{key}: write it as {{ value = …, unit = "{unit}", source = "…" }}')
    try:
        quantity = Q_(float(entry["value"]), str(entry["unit"]))
    except Exception:  # pint raises several unrelated types for an unreadable unit
        raise DrugFileError(f"{path.name}: {where}.{key}: cannot read {entry['value']!r} {entry['unit']!r}") from None
    return to_unit(quantity, unit, what=f"{path.name}: {where}.{key}"), str(entry.get("source", ""))


def in_vitro_clearance(name: str, folder: Path = LIBRARY) -> InVitroClearance | None:
    """The drug's ``[in_vitro]`` table read and scaled, or None when the file has none."""
    path, data = drug_file(name, folder)
    table = data.get("in_vitro")
    if not table:
        return None
    sources: dict[str, str] = {}

    def value(key: str, unit: str, default: float | None = None) -> float:
        if key not in table and default is not None:
            return default
        number, sources[key] = entry_value(path, table, "in_vitro", key, unit)
        return number

    fu_inc = value("fu_inc", "dimensionless", default=1.0)
    if not 0 < fu_inc <= 1:
        raise DrugFileError(f"{path.name}: in_vitro.fu_inc must be a fraction in (0, 1]; got {fu_inc}")
    if "clint_scaled" in table:
        clint = value("clint_scaled", "mL/min/kg")
    else:
        vmax_nmol_h_mg, km_um = value("vmax", "nmol/h/mg"), value("km", "µM")
        share = value("pathway_fraction", "dimensionless")
        if not (vmax_nmol_h_mg > 0 and km_um > 0 and 0 < share <= 1):
            raise DrugFileError(f"{path.name}: in_vitro.vmax and km must be positive and pathway_fraction in (0, 1]")
        per_mg_ml_h = vmax_nmol_h_mg / km_um  # nmol/h/mg ÷ nmol/mL = mL/h per mg protein
        per_kg_ml_h = per_mg_ml_h * MICROSOMAL_PROTEIN_MG_PER_G * DEFAULT_SCALING.liver_g_per_kg
        clint = per_kg_ml_h / 60.0 / share
    if not clint > 0:
        raise DrugFileError(f"{path.name}: the in-vitro CLint must be positive; got {clint}")
    return InVitroClearance(
        drug=data.get("name", path.stem),
        system=str(table.get("system", "")),
        clint_u_ml_min_per_kg=clint / fu_inc,
        sources=tuple(f"in_vitro.{key}: {src}" for key, src in sources.items()),
    )
