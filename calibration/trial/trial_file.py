"""A virtual two-arm trial, read strictly from TOML (examples/trials/procova_liver_enzyme.toml).

    name = "…"                       # required
    subjects = "patients"            # or "chips"
    [arms]        treatment = 120    control = 120                 # subjects per arm, 2–100,000
    [outcome]     name = "…"  unit = "…"  control_mean = 0.0  sd = 10.0  effect = 4.0
    [prognostic]  correlation = 0.6  source = "…"                 # ρ in (−1, 1)
    [simulation]  n_trials = 10000  seed = 1  alpha = 0.05

``effect`` is treatment minus control in the outcome's unit; ``sd`` the outcome's standard
deviation within an arm; ``correlation`` that of the twin's predicted control outcome with the
observed outcome. Unknown keys, wrong types, NaN/inf and out-of-range numbers are refused in
one line naming the file, the key and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from calibration.trial.errors import TrialError
from twin.toml_lines import TomlDocument, read_toml
from twin.userfile import read_user_text

MAX_SUBJECTS_PER_ARM = 100_000
MAX_SUBJECT_DRAWS = 2_000_000_000  # n_trials × subjects: beyond this a run takes minutes, not seconds
_BIG = 1e9  # outcome magnitudes beyond this are a unit mistake


class _Strict(BaseModel):
    # TOML gives real types: a bool as a number or a string as a size is a mistake, not a coercion
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class Arms(_Strict):
    treatment: int = Field(ge=2, le=MAX_SUBJECTS_PER_ARM)
    control: int = Field(ge=2, le=MAX_SUBJECTS_PER_ARM)

    @property
    def total(self) -> int:
        return self.treatment + self.control


class Outcome(_Strict):
    name: str = "outcome"
    unit: str = ""
    control_mean: float = Field(default=0.0, ge=-_BIG, le=_BIG)
    sd: float = Field(gt=0, le=_BIG)
    effect: float = Field(ge=-_BIG, le=_BIG)


class Prognostic(_Strict):
    correlation: float = Field(gt=-1, lt=1)
    source: str = ""


class Simulation(_Strict):
    n_trials: int = Field(default=10_000, ge=100, le=10_000_000)
    seed: int = Field(default=0, ge=0, le=2**63 - 1)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)


class TrialDesign(_Strict):
    name: str = Field(min_length=1, max_length=200)
    subjects: Literal["patients", "chips"] = "patients"
    arms: Arms
    outcome: Outcome
    prognostic: Prognostic
    simulation: Simulation = Simulation()


_FIXES = {
    "extra_forbidden": "remove it (known keys: see docs/trials.md)",
    "missing": "add it (see examples/trials/procova_liver_enzyme.toml)",
    "finite_number": "write a finite number",
    "model_type": "write it as a TOML table, e.g. [arms] with treatment = 100 and control = 100",
}

_KEY_FIXES = {
    "prognostic.correlation": "give the correlation ρ strictly between -1 and 1, e.g. 0.6",
    "outcome.sd": "give the outcome's standard deviation as a positive finite number",
    "arms.treatment": f"give a whole number of subjects from 2 to {MAX_SUBJECTS_PER_ARM:,}",
    "arms.control": f"give a whole number of subjects from 2 to {MAX_SUBJECTS_PER_ARM:,}",
    "simulation.n_trials": "give a whole number of trials from 100 to 10,000,000",
    "simulation.alpha": "give a two-sided level in (0, 0.5), e.g. 0.05",
}


def _message(where: str, error: Any) -> str:
    key = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        problem = f"unknown key {key}"
    elif kind == "missing":
        problem = f"{key} is missing"
    else:
        problem = f"{key} = {error.get('input')!r}: {error['msg'][0].lower()}{error['msg'][1:]}"
    fix = _KEY_FIXES.get(key) if kind not in ("extra_forbidden", "missing", "model_type") else None
    fix = fix or _FIXES.get(kind, "correct the value (ranges in docs/trials.md)")
    return f"{where}: {problem}; fix: {fix}"


def trial_design_from_dict(
    data: dict[str, Any], path: Path | str = "<trial>", doc: TomlDocument | None = None
) -> TrialDesign:
    """Validate a trial; with ``doc`` (the file it came from) the message names the line."""

    def at(loc: tuple) -> str:
        return doc.where(loc) if doc is not None else str(path)

    try:
        design = TrialDesign.model_validate(data)
    except pydantic.ValidationError as exc:
        error = exc.errors()[0]
        raise TrialError(_message(at(tuple(error["loc"])), error)) from None
    draws = design.simulation.n_trials * design.arms.total
    if draws > MAX_SUBJECT_DRAWS:
        raise TrialError(
            f"{at(('simulation', 'n_trials'))}: simulation.n_trials × subjects = {draws:,} virtual subjects, above "
            f"{MAX_SUBJECT_DRAWS:,}; fix: fewer trials or smaller arms"
        )
    return design


def load_trial_design(path: str | Path) -> TrialDesign:
    """The trial file at ``path``, or one TrialError line naming the file, the problem and the fix."""
    text = read_user_text(path, "trial file", error=TrialError)
    doc = read_toml(text, str(path), error=TrialError)
    return trial_design_from_dict(doc.data, path, doc)
