"""PEtab v1 interop: export a calibration problem (SBML model + tables), import one back.

    yaml = export_petab("lab.csv", "liver_chip", "out/", estimate=["vmax", "km"], fix={"ps": 0.5})
    problem = import_petab(yaml)            # an IndividualProblem (PEtab problems are pooled)

Mapping (MODELS.md §4 conventions in PEtab form):
- model: ``twin.sbml.export_sbml`` of the catalogue model; its SBML id is the catalogue name.
- conditions: one per chip (lab data) or subject (NONMEM data): the chip constants, and the
  dose at t = 0 as the initial amount of the dosed state (``A_m`` of a chip's medium; the
  state of CMT for a PK model). **PEtab v1 has no events**: a dose after t = 0, a sample that
  removes volume, a media change or a NONMEM infusion/repeat dose is refused with a
  ``CalibrationError`` (zero-volume samples change nothing and are dropped).
- observables ``obs_<name>`` = the model's observable (times the NONMEM scale); noise formulas
  are the error model's SD: ``a``, ``b·f`` or ``sqrt(a² + (b·f)²)`` with ``<observable>_add_sd``
  / ``<observable>_prop_cv`` noise parameters; normal noise, linear scale.
- parameters: every model parameter on the natural-log scale with its catalogue bounds;
  estimated ones at their start, fixed ones at their value with estimate = 0.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from calibration.errors import CalibrationError
from calibration.estimate.error_models import ErrorModel, Residuals
from calibration.estimate.individual import IndividualProblem
from calibration.estimate.lab_fit import ChipPredictor, residuals_for
from calibration.io.datasets import detect_format, load_nonmem
from calibration.io.lab import ChipData, read_lab_dataset
from calibration.io.nonmem import NonmemProblem
from twin.catalogue import get_model
from twin.chip import Dose, Sample
from twin.sbml import export_sbml

V1_LIMIT = "PEtab v1 has no events, so only a single dose at t = 0 (as the initial amount) can be exported"
NOISE_UPPER = 1e6


def _sid(text: str) -> str:
    sid = re.sub(r"\W", "_", str(text))
    return sid if re.match(r"[A-Za-z_]", sid) else f"c_{sid}"


def _noise(observable: str, formula: str, kind: str) -> tuple[str, list[str]]:
    a, b = f"{observable}_add_sd", f"{observable}_prop_cv"
    return {"add": (a, [a]), "prop": (f"{b} * {formula}", [b]), "comb": (f"sqrt({a}^2 + ({b} * {formula})^2)", [a, b])}[
        kind
    ]


def _chip_tables(chips: dict[str, ChipData], spec) -> tuple[list[dict], list[dict]]:
    conditions, measurements = [], []
    for name, chip in chips.items():
        cid = _sid(name)
        dose_nmol, extra_ml = 0.0, 0.0
        for event in chip.events:
            if isinstance(event, Sample) and event.volume_ml == 0:
                continue
            if isinstance(event, Dose) and event.time_h == 0:
                dose_nmol, extra_ml = dose_nmol + event.amount_nmol, extra_ml + event.volume_ml
                continue
            raise CalibrationError(
                f"chip {name}: {type(event).__name__.lower()} at {event.time_h:g} h; {V1_LIMIT} "
                "(and no samples or media changes). Export the data up to that event, or fit it here"
            )
        constants = {c.name: c.default for c in spec.constants} | chip.constants
        constants["V_m0"] = constants.get("V_m0", 1.0) + extra_ml
        conditions.append({"conditionId": cid, **constants, "A_m": dose_nmol})
        for t, obs, value in zip(chip.times_h, chip.observables, chip.values):
            measurements.append(
                {
                    "observableId": f"obs_{obs}",
                    "simulationConditionId": cid,
                    "time": max(float(t), 0.0),
                    "measurement": value,
                }
            )
    return conditions, measurements


def _nonmem_tables(data: pd.DataFrame, spec, observable: str, scale: float):
    conditions, measurements = [], []
    for subject, rows in data.groupby("ID", sort=False):
        cid = _sid(f"id_{subject}")
        doses = rows[rows["EVID"].isin([1, 4])]
        column = lambda name: rows[name] if name in rows else pd.Series(0.0, index=rows.index)  # noqa: E731
        later = doses[
            (doses["TIME"] != 0)
            | (column("RATE").loc[doses.index].fillna(0) != 0)
            | (column("ADDL").loc[doses.index].fillna(0) > 0)
            | (column("SS").loc[doses.index].fillna(0) > 0)
        ]
        if len(later):
            raise CalibrationError(
                f"subject {subject}: a dose at {later['TIME'].iloc[0]:g} h (or an infusion, "
                f"ADDL or SS dose); {V1_LIMIT}"
            )
        initial = {s.name: 0.0 for s in spec.states}
        for _, dose in doses.iterrows():
            initial[spec.states[int(dose["CMT"]) - 1].name] += float(dose["AMT"])
        conditions.append({"conditionId": cid, **{k: v for k, v in initial.items() if v}})
        observed = rows[(rows["EVID"] == 0) & (rows["MDV"] == 0) & rows["DV"].notna()]
        measurements += [
            {
                "observableId": f"obs_{observable}",
                "simulationConditionId": cid,
                "time": float(t),
                "measurement": float(dv),
            }
            for t, dv in zip(observed["TIME"], observed["DV"])
        ]
    return conditions, measurements


def export_petab(
    data: str | Path,
    model: str,
    directory: str | Path,
    *,
    estimate: Sequence[str] | None = None,
    fix: Mapping[str, float] | None = None,
    init: Mapping[str, float] | None = None,
    error: str | Mapping[str, str] | None = None,
    observable: str = "cp",
    scale: float = 1.0,
) -> Path:
    """Write model.xml, conditions/measurements/observables/parameters.tsv and problem.yaml; return the YAML."""
    spec, fix = get_model(model), dict(fix or {})
    names = tuple(estimate or [p for p in spec.parameter_names if p not in fix])
    unknown = sorted((set(names) | set(fix) | set(init or {})) - set(spec.parameter_names))
    if unknown:
        raise CalibrationError(f"model {model!r} has no parameter {', '.join(unknown)}")
    if detect_format(data) == "lab":
        chips = {n: c for n, c in read_lab_dataset(data).items() if c.n_observations}
        conditions, measurements = _chip_tables(chips, spec)
        kinds = {o: m.kind for o, m in residuals_for([o for c in chips.values() for o in c.observables], error).items()}
        formulas = {o: o for o in kinds}
    else:
        frame, _ = load_nonmem(data)
        conditions, measurements = _nonmem_tables(frame, spec, observable, scale)
        kinds = {observable: error if isinstance(error, str) else "prop"}
        formulas = {observable: observable if scale == 1 else f"{scale!r} * {observable}"}
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    export_sbml(spec, directory / "model.xml")
    observables, parameters = [], []
    for name, kind in kinds.items():
        noise, noise_parameters = _noise(name, formulas[name], kind)
        observables.append(
            {
                "observableId": f"obs_{name}",
                "observableFormula": formulas[name],
                "observableTransformation": "lin",
                "noiseFormula": noise,
                "noiseDistribution": "normal",
            }
        )
        defaults = dict(
            zip(
                ErrorModel(kind).parameter_names,
                ErrorModel(kind).default_sigma(
                    np.array([m["measurement"] for m in measurements if m["observableId"] == f"obs_{name}"])
                ),
            )
        )
        parameters += [_row(p, 1e-8, NOISE_UPPER, defaults[p.split(f"{name}_", 1)[1]], True) for p in noise_parameters]
    for p in spec.parameters:
        nominal = fix.get(p.name, (init or {}).get(p.name, p.default))
        parameters.append(_row(p.name, p.lower, p.upper, nominal, p.name in names))
    tables = {
        "conditions": conditions,
        "measurements": measurements,
        "observables": observables,
        "parameters": parameters,
    }
    for table, rows in tables.items():
        pd.DataFrame(rows).to_csv(directory / f"{table}.tsv", sep="\t", index=False)
    yaml = directory / "problem.yaml"
    yaml.write_text(
        "format_version: 1\nparameter_file: parameters.tsv\nproblems:\n- condition_files: [conditions.tsv]\n"
        "  measurement_files: [measurements.tsv]\n  observable_files: [observables.tsv]\n"
        "  sbml_files: [model.xml]\n"
    )
    return yaml


def _row(pid, lower, upper, nominal, estimate) -> dict:
    return {
        "parameterId": pid,
        "parameterScale": "log",
        "lowerBound": lower,
        "upperBound": upper,
        "nominalValue": nominal,
        "estimate": int(bool(estimate)),
    }


def lint_petab(yaml: str | Path) -> bool:
    """True when the ``petab`` linter (v1) finds no error (needs the optional ``petab`` package)."""
    try:
        import petab.v1 as petab
    except ImportError:
        raise CalibrationError("the PEtab linter needs the petab package: pip install petab") from None
    with warnings.catch_warnings():  # petab 0.8 calls pandas APIs pandas now deprecates; not ours to fix
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        return not petab.lint_problem(petab.Problem.from_yaml(str(yaml)))


_NOISE = re.compile(
    r"^(?:(?P<add>\w+_add_sd)|(?P<prop>\w+_prop_cv) \* .+|"
    r"sqrt\((?P<ca>\w+_add_sd)\^2 \+ \((?P<cb>\w+_prop_cv) \* .+\)\^2\))$"
)


def import_petab(yaml: str | Path) -> IndividualProblem:
    """A PEtab problem of a catalogue model (by the SBML model id) as one pooled fitting problem."""
    yaml = Path(yaml)
    files = {k: v.strip(" []") for k, v in re.findall(r"(\w+_files?):\s*(.+)", yaml.read_text())}
    read = lambda key: pd.read_csv(yaml.parent / files[key], sep="\t")  # noqa: E731
    model_id = re.search(r'<model[^>]*\sid="([^"]+)"', (yaml.parent / files["sbml_files"]).read_text())
    spec = get_model(model_id.group(1) if model_id else "")
    conditions = read("condition_files").set_index("conditionId")
    measurements, observables = read("measurement_files"), read("observable_files").set_index("observableId")
    table = read("parameter_file").set_index("parameterId")
    models, scale = {}, {}
    for oid, row in observables.iterrows():
        match = _NOISE.match(str(row["noiseFormula"]).strip())
        if not match or row.get("observableTransformation", "lin") != "lin":
            raise CalibrationError(
                f"observable {oid}: noise formula {row['noiseFormula']!r} is not one of the "
                "additive, proportional or combined forms this import reads"
            )
        models[oid] = ErrorModel("add" if match["add"] else "prop" if match["prop"] else "comb")
        factor = re.match(r"^([\d.eE+-]+) \* (\w+)$", str(row["observableFormula"]))
        scale[oid] = float(factor.group(1)) if factor else 1.0
    estimated = table[(table["estimate"] == 1) & table.index.isin(spec.parameter_names)]
    fixed = {p: float(v) for p, v in table.loc[table["estimate"] == 0, "nominalValue"].items()}
    groups = np.array([str(o).removeprefix("obs_") for o in measurements["observableId"]], dtype=object)
    residuals = Residuals(groups, {g: models[f"obs_{g}"] for g in dict.fromkeys(groups)})
    predict = _predictor(spec, conditions, measurements, observables, scale)
    bounds = {p: (float(r["lowerBound"]), float(r["upperBound"])) for p, r in estimated.iterrows()}
    return IndividualProblem(
        tuple(estimated.index),
        predict,
        measurements["measurement"].to_numpy(float),
        residuals,
        fixed=fixed,
        bounds=bounds,
        model=spec.name,
        model_version=spec.version,
    )


def _predictor(spec, conditions, measurements, observables, scale):
    by_condition = list(dict.fromkeys(measurements["simulationConditionId"]))
    if "A_m" in spec.state_names:  # a chip model: one ChipPredictor per condition
        parts = []
        for cid in by_condition:
            rows = measurements[measurements["simulationConditionId"] == cid]
            row = conditions.loc[cid]
            chip = ChipData(
                cid,
                [Dose(0.0, float(row.get("A_m", 0.0)), 0.0)],
                {c.name: float(row[c.name]) for c in spec.constants if c.name in row},
                rows["time"].tolist(),
                [str(observables.loc[o, "observableFormula"]) for o in rows["observableId"]],
                rows["measurement"].tolist(),
            )
            parts.append(ChipPredictor(chip, spec.name))
        return lambda values: np.concatenate([part(values) for part in parts])
    data = []
    for k, cid in enumerate(by_condition, start=1):
        for s, state in enumerate(spec.states, start=1):
            amount = conditions.loc[cid].get(state.name, 0.0)
            if amount == amount and amount:
                data.append({"ID": k, "TIME": 0.0, "AMT": float(amount), "EVID": 1, "CMT": s, "DV": np.nan, "MDV": 1})
        rows = measurements[measurements["simulationConditionId"] == cid]
        data += [
            {"ID": k, "TIME": t, "AMT": 0.0, "EVID": 0, "CMT": 1, "DV": y, "MDV": 0}
            for t, y in zip(rows["time"], rows["measurement"])
        ]
    oid = next(iter(observables.index))
    names = tuple(spec.parameter_names)
    target = re.sub(r"^[\d.eE+-]+ \* ", "", str(observables.loc[oid, "observableFormula"]))
    problem = NonmemProblem(pd.DataFrame(data), spec, names, observable=target, scale=scale[oid])

    def predict(values):
        phi = np.tile([values[n] for n in names], (len(problem.ids), 1))
        return problem.predict(phi)[problem.mask]

    return predict
