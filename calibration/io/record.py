"""A fit is a record (MODELS.md §4): everything needed to judge it and to use it later.

Typed all the way to the store's edge: each estimate is an ``Estimate``; the fits of the chips
of an individual fit, the profile likelihoods and an MCMC run are typed fields, not entries of
``data_selection`` (which says only which data were fitted). ``to_dict``/``to_json`` is the one
serialisation; ``from_dict`` also reads records stored before these fields existed.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from calibration.estimate.error_models import LOG_2PI
from twin.catalogue import get_model
from twin.errors import TwinError

LEGACY_KEYS = ("chips", "subjects", "profiles", "mcmc")  # once kept inside data_selection


@dataclass
class Estimate:
    """One parameter's estimate (natural scale) and its uncertainty; None where it could not be had."""

    estimate: float
    se: float | None = None
    ci95: list[float] | None = None  # from the observed information (log-normal)
    rse_percent: float | None = None
    ci95_profile: list[float | None] | None = None  # profile likelihood; None ends are open
    unit: str = ""  # the model's unit of the parameter (the estimate and its interval are in it)

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        if self.ci95_profile is None:
            del document["ci95_profile"]
        return document

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Estimate:
        return cls(**{k: v for k, v in document.items() if k in cls.__dataclass_fields__})


@dataclass
class ProfileSummary:
    """A profile likelihood as kept with the fit: Δ(−2LL) over values of the parameter."""

    estimate: float
    ci95: list[float | None]
    values: list[float]
    delta_minus2ll: list[float]
    threshold: float
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> ProfileSummary:
        return cls(**{k: v for k, v in document.items() if k in cls.__dataclass_fields__})


@dataclass
class PosteriorSummary:
    median: float
    ci95: list[float]
    log_mean: float
    log_sd: float


@dataclass
class McmcSummary:
    """What an MCMC run around the estimate found (the draws themselves are not kept)."""

    sampler: str
    n_walkers: int
    n_steps: int
    burn: int
    n_draws: int
    acceptance_fraction: float
    autocorr_time: dict[str, float] | None
    autocorr_reliable: bool
    summary: dict[str, PosteriorSummary]
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> McmcSummary:
        known = {k: v for k, v in document.items() if k in cls.__dataclass_fields__}
        known["summary"] = {n: PosteriorSummary(**s) for n, s in known.get("summary", {}).items()}
        return cls(**known)


@dataclass
class FitRecord:
    model: str
    model_version: str
    method: str  # individual | pooled | population-foce-i
    converged: bool
    minus2ll: float  # without the N·log 2π constant (NONMEM's OFV convention)
    n_observations: int
    n_subjects: int
    n_estimated: int
    theta: dict[str, Estimate]
    sigma: dict[str, float]
    omega: dict[str, dict[str, float]] = field(default_factory=dict)
    individual: dict[str, dict[str, float]] = field(default_factory=dict)
    correlation: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    data_selection: dict[str, Any] = field(default_factory=dict)  # which data were fitted
    wall_time_s: float = 0.0
    chips: dict[str, FitRecord] = field(default_factory=dict)  # each chip's own fit (individual fits of chips)
    subjects: dict[str, FitRecord] = field(default_factory=dict)  # each subject's (individual NONMEM-data fits)
    profiles: dict[str, ProfileSummary] = field(default_factory=dict)
    mcmc: McmcSummary | None = None

    def __post_init__(self) -> None:
        units = _parameter_units(self.model)
        for name, entry in self.theta.items():
            if isinstance(entry, Estimate) and not entry.unit:
                entry.unit = units.get(name, "")

    @property
    def minus2ll_with_constant(self) -> float:
        return self.minus2ll + self.n_observations * LOG_2PI

    @property
    def aic(self) -> float:
        """AIC and BIC use −2LL *with* the constant (the true likelihood)."""
        return self.minus2ll_with_constant + 2 * self.n_estimated

    @property
    def bic(self) -> float:
        return self.minus2ll_with_constant + self.n_estimated * math.log(max(self.n_observations, 1))

    def estimates(self) -> dict[str, float]:
        """θ by name, natural scale."""
        return {name: entry.estimate for name, entry in self.theta.items()}

    def to_dict(self) -> dict[str, Any]:
        document = {
            name: getattr(self, name)
            for name in self.__dataclass_fields__
            if name not in ("theta", "chips", "subjects", "profiles", "mcmc")
        }
        document.update(
            theta={name: entry.to_dict() for name, entry in self.theta.items()},
            chips={name: record.to_dict() for name, record in self.chips.items()},
            subjects={name: record.to_dict() for name, record in self.subjects.items()},
            profiles={name: asdict(profile) for name, profile in self.profiles.items()},
            mcmc=None if self.mcmc is None else asdict(self.mcmc),
            minus2ll_with_constant=self.minus2ll_with_constant,
            aic=self.aic,
            bic=self.bic,
            minus2ll_note="minus2ll excludes N·log(2π); minus2ll_with_constant includes it",
        )
        return document

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=_plain)

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> FitRecord:
        known = {k: v for k, v in document.items() if k in cls.__dataclass_fields__}
        selection = dict(known.get("data_selection") or {})
        legacy = {key: selection.pop(key) for key in LEGACY_KEYS if key in selection}
        known["data_selection"] = selection
        known["theta"] = {
            n: e if isinstance(e, Estimate) else Estimate.from_dict(e) for n, e in (known.get("theta") or {}).items()
        }
        for key in ("chips", "subjects"):
            parts = known.get(key) or legacy.get(key) or {}
            known[key] = {n: r if isinstance(r, FitRecord) else cls.from_dict(r) for n, r in parts.items()}
        profiles = known.get("profiles") or legacy.get("profiles") or {}
        known["profiles"] = {n: ProfileSummary.from_dict(p) for n, p in profiles.items()}
        mcmc = known.get("mcmc") or legacy.get("mcmc")
        known["mcmc"] = None if mcmc is None else McmcSummary.from_dict(mcmc)
        return cls(**known)


def _parameter_units(model: str) -> dict[str, str]:
    """The catalogue's unit of each parameter of ``model`` (none for a model outside the catalogue)."""
    try:
        spec = get_model(model)
    except TwinError:
        return {}
    return {p.name: p.unit for p in spec.parameters}


def chip_documents(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Chip → its record document, from a stored record of any age; a fit of one data set (no chips) is ''."""
    chips = document.get("chips") or (document.get("data_selection") or {}).get("chips")
    return dict(chips) if isinstance(chips, dict) and chips else {"": document}


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
