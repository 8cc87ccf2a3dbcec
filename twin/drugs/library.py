"""The drug library: one TOML file per drug in this folder, read into a ``Drug``.

File format (see midazolam.toml): a top-level ``name`` and ``description``, then tables
whose entries are all ``{ value = …, unit = "…", source = "…" }`` (plus ``approx = true``
where the number is representative rather than quoted):

- ``[properties]`` molecular_weight, fu_p, bp, fa, fg, ka, v (per kg body weight), fe
  (fraction of total plasma clearance excreted unchanged by the kidney), and
  ``cl_plasma`` (observed total plasma clearance per kg) unless a ``[chip]`` table is given;
- ``[fm]`` fraction of *hepatic intrinsic* clearance by each enzyme in a normal
  metaboliser (the rest is taken to be pathways the twin does not vary);
- ``[ki]`` unbound competitive inhibition constants, when the drug is a perpetrator;
- ``[chip]`` liver-chip fit: vmax, km, n_cells_million, optional fu_inc and ec50.

Hepatic CLint comes from the chip when there is one (MODELS.md §3, forward IVIVE);
otherwise it is back-calculated from cl_plasma, fe and BP with the well-stirred model
(retrograde), so the reference adult reproduces the observed clearance.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Mapping

from twin.errors import InvalidValueError, TwinError
from twin.ivive import DEFAULT_SCALING, clint_from_well_stirred, clint_per_million_cells_ml_per_h
from twin.units import Q_, to_unit

LIBRARY = Path(__file__).resolve().parent
REFERENCE_WEIGHT_KG = 70.0  # the adult for whom literature clearances are quoted
REFERENCE_CRCL_ML_MIN = 100.0  # that adult's creatinine clearance: renal CL scales from here

_PROPERTY_UNITS = {
    "molecular_weight": "g/mol",
    "fu_p": "dimensionless",
    "bp": "dimensionless",
    "fa": "dimensionless",
    "fg": "dimensionless",
    "ka": "1/h",
    "v": "L/kg",
    "fe": "dimensionless",
}
_CHIP_UNITS = {"vmax": "nmol/h", "km": "µM", "n_cells_million": "dimensionless"}


class UnknownDrugError(TwinError):
    """A drug name that has no file in the library."""


class DrugFileError(TwinError):
    """A drug file that is missing a property or holds one the twin cannot read."""


@dataclass(frozen=True)
class ChipData:
    vmax_nmol_per_h: float
    km_um: float
    n_cells_million: float
    fu_inc: float = 1.0
    ec50_um: float | None = None


@dataclass(frozen=True)
class Drug:
    """A victim drug, in canonical units, with where each number came from."""

    name: str
    molecular_weight_g_per_mol: float
    fu_p: float
    bp: float
    fa: float
    fg: float
    ka_per_h: float
    v_l_per_kg: float
    fe: float
    fm: Mapping[str, float]
    clint_u_l_per_h_per_kg: float  # unbound hepatic CLint per kg body weight (liver ∝ weight)
    cl_renal_ref_l_per_h: float  # renal clearance of the reference adult (CrCl 100 mL/min)
    clint_origin: str  # "chip" or "observed clearance"
    ki_um: Mapping[str, float] = field(default_factory=dict)
    chip: ChipData | None = None
    approximate: tuple[str, ...] = ()
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def ec50_mg_per_l(self) -> float | None:
        """Chip EC50 as a plasma concentration: µM × g/mol = µg/L → mg/L."""
        if self.chip is None or self.chip.ec50_um is None:
            return None
        return self.chip.ec50_um * self.molecular_weight_g_per_mol / 1000.0


@dataclass(frozen=True)
class Inhibitor:
    name: str
    ki_um: Mapping[str, float]


def known_drugs(folder: Path = LIBRARY) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.toml"))


@cache
def _read(name: str, folder: Path) -> tuple[Path, dict[str, Any]]:
    path = folder / f"{name.strip().lower()}.toml"
    if not path.is_file():
        raise UnknownDrugError(f"unknown drug {name!r}; the library has: {', '.join(known_drugs(folder))}")
    try:
        return path, tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise DrugFileError(f"{path.name}: not valid TOML ({exc})") from None


class _Reader:
    """Reads `{value, unit, source}` entries of one file, naming file and key in every error."""

    def __init__(self, path: Path, data: dict[str, Any]):
        self.path, self.data = path, data
        self.approximate: list[str] = []
        self.sources: dict[str, str] = {}

    def table(self, name: str) -> dict[str, Any]:
        table = self.data.get(name, {})
        if not isinstance(table, dict):
            raise DrugFileError(f"{self.path.name}: [{name}] must be a table")
        return table

    def has(self, table: str, key: str) -> bool:
        return key in self.table(table)

    def value(self, table: str, key: str, unit: str, *, default: float | None = None) -> float:
        where = f"{self.path.name}: {table}.{key}"
        entry = self.table(table).get(key)
        if entry is None:
            if default is not None:
                return default
            raise DrugFileError(f'{where} is missing (write {key} = {{ value = …, unit = "{unit}", source = "…" }})')
        if not isinstance(entry, dict) or "value" not in entry or "unit" not in entry:
            raise DrugFileError(f'{where}: write it as {{ value = …, unit = "{unit}", source = "…" }}')
        try:
            quantity = Q_(float(entry["value"]), str(entry["unit"]))
        except Exception:  # pint raises several unrelated types for an unreadable unit
            raise DrugFileError(
                f"{where}: cannot read {entry['value']!r} {entry['unit']!r} as a quantity in {unit}"
            ) from None
        magnitude = to_unit(quantity, unit, what=where)
        if magnitude < 0:
            raise InvalidValueError(f"{where} must not be negative; got {magnitude}")
        self.sources[f"{table}.{key}"] = str(entry.get("source", ""))
        if entry.get("approx"):
            self.approximate.append(f"{table}.{key}")
        return magnitude

    def fractions(self, table: str, unit: str) -> dict[str, float]:
        return {key: self.value(table, key, unit) for key in self.table(table)}


def load_inhibitor(name: str, folder: Path = LIBRARY) -> Inhibitor:
    path, data = _read(name, folder)
    ki = _Reader(path, data).fractions("ki", "µM")
    if not ki:
        raise DrugFileError(f"{path.name}: has no [ki] table, so {name!r} inhibits nothing the twin models")
    return Inhibitor(name=data.get("name", path.stem), ki_um=ki)


def _chip(reader: _Reader) -> ChipData | None:
    if not reader.table("chip"):
        return None
    values = {key: reader.value("chip", key, unit) for key, unit in _CHIP_UNITS.items()}
    fu_inc = reader.value("chip", "fu_inc", "dimensionless", default=1.0)
    ec50 = reader.value("chip", "ec50", "µM") if reader.has("chip", "ec50") else None
    return ChipData(values["vmax"], values["km"], values["n_cells_million"], fu_inc, ec50)


def _hepatic_and_renal(reader: _Reader, props: dict[str, float], chip: ChipData | None) -> tuple[float, float, str]:
    """(unbound CLint per kg, reference renal CL in L/h, origin) — see the module docstring."""
    fe, qh_per_kg, fub = props["fe"], DEFAULT_SCALING.qh_l_per_h_per_kg(), props["fu_p"] / props["bp"]
    if fe >= 1.0:
        raise DrugFileError(f"{reader.path.name}: properties.fe must be below 1 (some hepatic clearance)")
    if chip is not None:
        per_million = clint_per_million_cells_ml_per_h(
            chip.vmax_nmol_per_h, chip.km_um, chip.n_cells_million, fu_inc=chip.fu_inc
        )
        clint_per_kg = per_million * DEFAULT_SCALING.liver_cells_million_per_kg() / 1000.0
        clh_plasma_per_kg = float(qh_per_kg * fub * clint_per_kg / (qh_per_kg + fub * clint_per_kg)) * props["bp"]
        return clint_per_kg, fe / (1 - fe) * clh_plasma_per_kg * REFERENCE_WEIGHT_KG, "chip"
    cl_per_kg = reader.value("properties", "cl_plasma", "L/h/kg")
    clh_blood_per_kg = (1 - fe) * cl_per_kg / props["bp"]
    try:
        clint_per_kg = float(clint_from_well_stirred(qh_per_kg, fub, clh_blood_per_kg))
    except InvalidValueError as exc:
        raise DrugFileError(f"{reader.path.name}: {exc}") from None
    return clint_per_kg, fe * cl_per_kg * REFERENCE_WEIGHT_KG, "observed clearance"


@cache
def load_drug(name: str, folder: Path = LIBRARY) -> Drug:
    """The drug called ``name`` (case-insensitive) from ``folder``; errors name the file and key."""
    path, data = _read(name, folder)
    reader = _Reader(path, data)
    if "ki" in data and "fu_p" not in reader.table("properties"):
        raise DrugFileError(
            f"{path.name} describes {name!r} as an inhibitor only (it has no properties.fu_p, "
            "properties.v, …); it can be a co-medication, not the drug dosed"
        )
    props = {key: reader.value("properties", key, unit) for key, unit in _PROPERTY_UNITS.items()}
    for key in ("fu_p", "fa", "fg"):
        if not 0 < props[key] <= 1:
            raise DrugFileError(f"{path.name}: properties.{key} must be a fraction in (0, 1]; got {props[key]}")
    fm = reader.fractions("fm", "dimensionless")
    if sum(fm.values()) > 1 + 1e-9:
        raise DrugFileError(f"{path.name}: the [fm] fractions add up to {sum(fm.values()):.3g} > 1")
    chip = _chip(reader)
    clint_per_kg, cl_renal_ref, origin = _hepatic_and_renal(reader, props, chip)
    return Drug(
        name=data.get("name", path.stem),
        molecular_weight_g_per_mol=props["molecular_weight"],
        fu_p=props["fu_p"],
        bp=props["bp"],
        fa=props["fa"],
        fg=props["fg"],
        ka_per_h=props["ka"],
        v_l_per_kg=props["v"],
        fe=props["fe"],
        fm=fm,
        clint_u_l_per_h_per_kg=clint_per_kg,
        cl_renal_ref_l_per_h=cl_renal_ref,
        clint_origin=origin,
        ki_um=reader.fractions("ki", "µM"),
        chip=chip,
        approximate=tuple(reader.approximate),
        sources=reader.sources,
    )
