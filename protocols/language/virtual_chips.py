"""A thousand virtual chips before the real ones: the dry run repeated over chips drawn at random.

The nominal dry run (``protocols.language.timeline``) lays the protocol out once: the same
doses (in nmol, computed from the *nominal* medium volume, as the runner computes them),
samples and media changes at the same times for every virtual copy of a chip. Each virtual
run ``i`` then draws

- the chips' shared parameters θ_i from the posterior (a fit record's estimates with their
  intervals and correlation, ``calibration.dosing.optimise.chip_posterior``) or, without a
  fit, from the model's defaults with a log-normal prior (``prior_cv``) — one draw per run,
  since the chips of a run share a cell lot;
- per chip, between-chip variability: θ_chip = θ_i · exp(η), η ~ N(0, ω²) with
  ω² = log(1 + CV²) per parameter, and a fill factor of the medium f ~ logN(0, log(1 + CV²))
  that scales the starting volume and every media change's volume.

Every chip of every virtual run is simulated in one batch (``twin.chip.simulate_chips``,
vectorised Rodas4), and the report gives, per chip of the protocol, the probability that
each interlock trips, that the peak medium concentration exceeds the rig's chip limit, that
a sample would take the medium below its minimum (that sample is then skipped, as the dry
run skips it), and the 5/50/95 % spread of every readout (each sample's drug and metabolite
concentration, the lowest oxygen, the viability at the end).

    report = virtual_chips(protocol, rig, n_chips=1000, seed=0, fit=record)   # VirtualChipsReport
"""

from __future__ import annotations

import math
import multiprocessing
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from calibration.dosing.optimise import Posterior, chip_posterior
from calibration.io.record import FitRecord
from protocols.errors import ProtocolError
from protocols.language.interlock import Interlock
from protocols.language.protocol import Protocol
from protocols.language.quantities import magnitude
from protocols.language.rig_view import RigView, matching_channels
from protocols.language.timeline import Timeline, Walker
from twin.catalogue import get_model
from twin.chip import ChipRun, Event, simulate_chips
from twin.chip import Dose as DoseEvent
from twin.chip import MediaChange as MediaChangeEvent
from twin.chip import Sample as SampleEvent

GRID_H = 5.0 / 60.0  # as the nominal dry run
RTOL, ATOL = 1e-6, 1e-8  # looser than one chip's 1e-8: a spread over chips needs no eighth digit
DEFAULT_CHIP_CV = {"ps": 0.25, "vmax": 0.25, "km": 0.25, "kon": 0.25, "koff": 0.25, "kmax": 0.25, "ec50": 0.25}
DEFAULT_CHIP_CV |= {"hill": 0.1, "ocr": 0.25, "medium": 0.05}
DEFAULT_PRIOR_CV = 0.3
MEDIUM = "medium"  # the name of the fill factor among the variabilities
MAX_VIRTUAL_CHIPS = 100_000
CHUNK = 2000  # chips per batch: a chunk's states (2,000 chips × 865 times of a 72 h run ≈ 100 MB), not all
OBSERVABLES = ("drug_medium", "metabolite_medium", "oxygen", "viability")


Simulator = Callable[[Sequence[ChipRun], np.ndarray], Mapping[str, np.ndarray]]


def batched(runs: Sequence[ChipRun], times_h: np.ndarray) -> Mapping[str, np.ndarray]:
    """Every virtual chip at once: ``twin.chip.simulate_chips`` (vectorised Rodas4); arrays (chips, times)."""
    return simulate_chips(runs, times_h, OBSERVABLES, rtol=RTOL, atol=ATOL)


def pooled(workers: int) -> Simulator:
    """The batch split into ``workers`` parts, each solved in its own process (forked: nothing to
    re-import). Each chip keeps its own step sizes, so the answers are the single batch's."""

    def simulate(runs: Sequence[ChipRun], times_h: np.ndarray) -> Mapping[str, np.ndarray]:
        bounds = np.linspace(0, len(runs), workers + 1).astype(int)
        parts = [list(runs[a:b]) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        if len(parts) < 2:
            return batched(runs, times_h)
        with ProcessPoolExecutor(len(parts), mp_context=multiprocessing.get_context("fork")) as pool:
            results = list(pool.map(batched, parts, [times_h] * len(parts)))
        return {name: np.concatenate([r[name] for r in results]) for name in OBSERVABLES}

    return simulate


class VirtualChipsError(ProtocolError, ValueError):
    """A virtual-chip check asked for something it cannot do (the message says what to change)."""


@dataclass(frozen=True)
class Spread:
    """The 5th, 50th and 95th percentiles of a quantity over the virtual chips."""

    p05: float
    p50: float
    p95: float
    unit: str

    @classmethod
    def of(cls, values: np.ndarray, unit: str) -> Spread:
        p05, p50, p95 = (float(q) for q in np.quantile(values, [0.05, 0.5, 0.95]))
        return cls(p05, p50, p95, unit)


@dataclass(frozen=True)
class Readout:
    """A readout the protocol produces (or the twin predicts), at a time, over the virtual chips."""

    name: str
    time_h: float | None  # None: over the whole run (a lowest value)
    spread: Spread


@dataclass
class ChipOutlook:
    """What the virtual copies of one chip of the protocol are predicted to do."""

    chip: str
    limit_um: float | None
    p_over_limit: float
    p_medium_runs_out: float
    p_interlock: dict[str, float]  # interlock (as written) -> P(it trips on this chip)
    peak_concentration: Spread
    min_medium: Spread
    readouts: list[Readout] = field(default_factory=list)


@dataclass
class VirtualChipsReport:
    n_chips: int  # virtual copies of each chip of the protocol (one per virtual run)
    seed: int
    source: str  # where the parameters came from
    duration_h: float
    chips: list[ChipOutlook]
    p_run_stops: float  # P(some chip of a run trips an interlock that stops the run)
    between_chip_cv: dict[str, float]
    assumptions: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float = 0.0

    def standard_error(self, p: float) -> float:
        """The Monte-Carlo standard error of a probability estimated from ``n_chips`` runs."""
        return math.sqrt(max(p * (1 - p), 0.0) / self.n_chips)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Draws:
    names: tuple[str, ...]
    values: np.ndarray  # (n_runs, n_chips, P), natural scale
    fill: np.ndarray  # (n_runs, n_chips)


def virtual_chips(
    protocol: Protocol,
    rig: RigView,
    n_chips: int,
    *,
    seed: int = 0,
    fit: FitRecord | Mapping | None = None,
    between_chip_cv: Mapping[str, float] | None = None,
    prior_cv: float = DEFAULT_PRIOR_CV,
    grid_h: float = GRID_H,
    simulator: Simulator = batched,
) -> VirtualChipsReport:
    """The protocol (already checked, its nominal dry run clean) on ``n_chips`` virtual runs.

    ``simulator`` turns the chips' runs into observables (default: one batch; the benchmark
    passes a per-chip loop to compare)."""
    wall, cpu = time.perf_counter(), _cpu_s()
    if not 1 <= n_chips <= MAX_VIRTUAL_CHIPS:
        raise VirtualChipsError(f"--virtual-chips {n_chips}: give between 1 and {MAX_VIRTUAL_CHIPS:,} chips")
    chips = list(protocol.chips)
    models = {rig.chips[c].model for c in chips}
    if models != {"liver_chip"}:
        raise VirtualChipsError(
            f"virtual chips are drawn for liver_chip only; this rig's chips are {', '.join(sorted(models))}"
        )
    cv = _cv({**DEFAULT_CHIP_CV, **(between_chip_cv or {})})
    constants = {c: {"V_m0": magnitude(rig.chips[c].medium_volume, "volume"), **rig.chips[c].constants} for c in chips}
    posterior, fixed, source = _posterior(fit, prior_cv)
    nominal_params = {**fixed, **{n: float(np.exp(m)) for n, m in zip(posterior.names, posterior.mean)}}
    timeline = Walker(protocol, rig, Timeline(chips, dict.fromkeys(chips, nominal_params), constants), grid_h).run()
    rng = np.random.default_rng(seed)
    draws = _draw(posterior, fixed, cv, n_chips, len(chips), rng)
    times = np.unique(
        np.concatenate(
            [np.arange(0.0, timeline.time_h, grid_h), [timeline.time_h]]
            + [[e.time_h for e in timeline.events[c]] for c in chips]
        )
    )
    runs, runs_out, medium_min = [], [], []
    for k, chip in enumerate(chips):
        schedules, short, lowest = _schedules(timeline.events[chip], draws.fill[:, k], constants[chip], rig, chip)
        runs_out.append(short)
        medium_min.append(lowest)
        for i in range(n_chips):
            params = dict(zip(draws.names, draws.values[i, k].tolist()))
            chip_constants = {**constants[chip], "V_m0": constants[chip]["V_m0"] * float(draws.fill[i, k])}
            runs.append(ChipRun(params, schedules[i], chip_constants))
    metrics = _simulate_in_chunks(protocol, rig, chips, n_chips, runs, times, timeline, simulator)
    stops = np.zeros(n_chips, dtype=bool)
    for interlock in protocol.interlocks:
        if interlock.stops:
            for m in metrics:
                stops |= m.get(("trip", str(interlock)), False)
    outlooks = [_outlook(chip, rig, metrics[k], runs_out[k], medium_min[k]) for k, chip in enumerate(chips)]
    report = VirtualChipsReport(
        n_chips,
        seed,
        source,
        timeline.time_h,
        outlooks,
        float(np.mean(stops)),
        cv,
        _assumptions(protocol, rig, timeline, fit is not None),
    )
    report.wall_s, report.cpu_s = time.perf_counter() - wall, _cpu_s() - cpu
    return report


def _cpu_s() -> float:
    """CPU seconds of this process and of its finished children (the pool's workers)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _cv(cv: Mapping[str, float]) -> dict[str, float]:
    names = set(get_model("liver_chip").parameter_names) | {MEDIUM}
    unknown = sorted(set(cv) - names)
    if unknown:
        raise VirtualChipsError(
            f"between-chip variability of {', '.join(unknown)}: not a liver_chip parameter; "
            f"use {', '.join(sorted(names))}"
        )
    bad = [n for n, v in cv.items() if not (math.isfinite(v) and 0 <= v <= 10)]
    if bad:
        raise VirtualChipsError(f"between-chip CV of {', '.join(bad)} must be a fraction between 0 and 10 (0.3 = 30 %)")
    return {n: float(v) for n, v in cv.items()}


def _posterior(fit: FitRecord | Mapping | None, prior_cv: float) -> tuple[Posterior, dict[str, float], str]:
    """log θ ~ N(mean, cov) for the estimated parameters; the rest held fixed."""
    spec = get_model("liver_chip")
    if fit is None:
        if not (math.isfinite(prior_cv) and prior_cv >= 0):
            raise VirtualChipsError(f"the prior CV {prior_cv!r} must be a non-negative fraction")
        names = spec.parameter_names
        mean = np.log([spec.parameter(n).default for n in names])
        sd = math.sqrt(math.log1p(prior_cv**2))
        source = f"liver_chip defaults, log-normal prior CV {prior_cv:.0%}"
        return Posterior(names, mean, np.eye(len(names)) * sd**2), {}, source
    document = fit.to_dict() if isinstance(fit, FitRecord) else dict(fit)
    if document.get("model") not in (None, "liver_chip"):
        raise VirtualChipsError(f"the fit is of {document.get('model')!r}; virtual chips need a liver_chip fit")
    if not document.get("theta"):
        raise VirtualChipsError("the fit record has no estimates (theta); give a fit from chiptwin fit --out")
    unknown = sorted(set(document["theta"]) - set(spec.parameter_names))
    if unknown:
        raise VirtualChipsError(f"the fit estimates {', '.join(unknown)}, which liver_chip does not have")
    fixed = {k: float(v) for k, v in ((document.get("data_selection") or {}).get("fixed") or {}).items()}
    return (
        chip_posterior(document),
        fixed,
        f"fit record ({document.get('method', 'fit')}, {len(document['theta'])} estimated)",
    )


def _draw(
    posterior: Posterior, fixed: Mapping[str, float], cv: Mapping[str, float], n_runs: int, n_chips: int, rng
) -> _Draws:
    spec = get_model("liver_chip")
    names = spec.parameter_names
    shared = posterior.sample(n_runs, rng)  # one draw per run: the chips of a run share a cell lot
    base = np.array(
        [shared[n] if n in shared else np.full(n_runs, fixed.get(n, spec.parameter(n).default)) for n in names]
    ).T  # (runs, P)
    omega = np.sqrt(np.log1p(np.array([cv.get(n, 0.0) for n in names]) ** 2))
    eta = rng.standard_normal((n_runs, n_chips, len(names))) * omega
    values = base[:, None, :] * np.exp(eta)
    lower = np.array([spec.parameter(n).lower for n in names])
    upper = np.array([spec.parameter(n).upper for n in names])
    fill = np.exp(rng.standard_normal((n_runs, n_chips)) * math.sqrt(math.log1p(cv.get(MEDIUM, 0.0) ** 2)))
    return _Draws(names, np.clip(values, lower, upper), fill)


def _schedules(
    events: list[Event], fill: np.ndarray, constants: Mapping[str, float], rig: RigView, chip: str
) -> tuple[list[list[Event]], np.ndarray, np.ndarray]:
    """Each virtual chip's events (media changes filled by its factor; a sample that would leave
    less than the minimum skipped), whether one was skipped, and the lowest medium volume."""
    minimum = magnitude(rig.chips[chip].min_medium_volume, "volume")
    volume = constants["V_m0"] * fill
    lowest, short = volume.copy(), np.zeros(fill.size, dtype=bool)
    columns: list[list[Event | None]] = []  # one list per event: each chip's version (None: skipped)
    for event in events:
        if isinstance(event, DoseEvent):
            volume = volume + event.volume_ml
            columns.append([event] * fill.size)
        elif isinstance(event, MediaChangeEvent):
            volume = event.volume_ml * fill
            columns.append([MediaChangeEvent(event.time_h, float(v), event.concentration_um) for v in volume])
        elif isinstance(event, SampleEvent):
            left = volume - event.volume_ml
            ok = (left > 0) & (left >= minimum)
            short |= ~ok
            volume = np.where(ok, left, volume)
            columns.append([event if taken else None for taken in ok])
        else:  # pragma: no cover - the timeline makes only these three
            raise VirtualChipsError(f"unexpected event {event!r}")
        lowest = np.minimum(lowest, volume)
    schedules = [[e for e in row if e is not None] for row in zip(*columns)] if columns else [[] for _ in fill]
    return schedules, short, lowest


def _tripped(
    rig: RigView,
    chip: str,
    interlock: Interlock,
    times: np.ndarray,
    values: Mapping[str, np.ndarray],
    units: Mapping[str, str],
) -> np.ndarray | None:
    """Per virtual chip, whether ``interlock`` trips on this chip (None: the twin does not predict it)."""
    channels = [c for c in matching_channels(rig, interlock.channel) if c.chip == chip and c.observable in values]
    if not channels:
        return None
    tripped = np.zeros(next(iter(values.values())).shape[0], dtype=bool)
    for channel in channels:
        assert channel.observable is not None
        tripped |= held_for(times, values[channel.observable], interlock, units[channel.observable])
    return tripped


def held_for(times_h: np.ndarray, values: np.ndarray, interlock: Interlock, unit: str) -> np.ndarray:
    """Rows of ``values`` (chips × times) on which the condition holds for its ``for`` duration:
    ``timeline.first_held`` vectorised (a streak starts at the first sample that holds)."""
    threshold = float(interlock.threshold.to(unit).magnitude)
    held = np.asarray(
        {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal}[interlock.op](values, threshold)
    )
    index = np.arange(times_h.size)
    start = np.maximum.accumulate(np.where(held, 0, index + 1), axis=1)  # first index of the current streak
    start = np.minimum(start, times_h.size - 1)
    lasted_s = (times_h[None, :] - times_h[start]) * 3600.0
    return np.any(held & (lasted_s >= interlock.for_s - 1e-6), axis=1)


Metrics = dict[tuple, np.ndarray]  # per virtual copy of one chip: ("peak",), ("trip", interlock), ("readout", name, t)


def _simulate_in_chunks(
    protocol: Protocol,
    rig: RigView,
    chips: list[str],
    n_chips: int,
    runs: list[ChipRun],
    times: np.ndarray,
    timeline: Timeline,
    simulator: Simulator,
) -> list[Metrics]:
    """Simulate ``CHUNK`` chips at a time and keep only what the report needs of each (memory stays
    bounded: a chunk's states, not every chip's), per chip of the protocol in run order."""
    units = {o.name: o.unit for o in get_model("liver_chip").observables}
    position = np.repeat(np.arange(len(chips)), n_chips)
    parts: list[dict[tuple, list[np.ndarray]]] = [{} for _ in chips]
    for start in range(0, len(runs), CHUNK):
        result = simulator(runs[start : start + CHUNK], times)
        where = position[start : start + CHUNK]
        for k in np.unique(where):
            values = {name: np.asarray(result[name])[where == k] for name in OBSERVABLES}
            reduced = _reduce(protocol, rig, chips[k], timeline.events[chips[k]], times, values, units)
            for key, array in reduced.items():
                parts[k].setdefault(key, []).append(array)
    return [{key: np.concatenate(arrays) for key, arrays in part.items()} for part in parts]


def _reduce(
    protocol: Protocol,
    rig: RigView,
    chip: str,
    events: list[Event],
    times: np.ndarray,
    values: Mapping[str, np.ndarray],
    units: Mapping[str, str],
) -> Metrics:
    """What the report needs of each virtual copy of ``chip`` (rows of ``values``)."""
    out: Metrics = {("peak",): values["drug_medium"].max(axis=1)}
    for interlock in protocol.interlocks:
        tripped = _tripped(rig, chip, interlock, times, values, units)
        if tripped is not None:
            out[("trip", str(interlock))] = tripped
    for event in events:
        if isinstance(event, SampleEvent):
            at = int(np.searchsorted(times, event.time_h))
            for name in ("drug_medium", "metabolite_medium"):
                out[("readout", name, event.time_h, units[name])] = values[name][:, at]
    out[("readout", "oxygen (lowest)", None, units["oxygen"])] = values["oxygen"].min(axis=1)
    out[("readout", "viability (end)", float(times[-1]), "1")] = values["viability"][:, -1]
    return out


def _outlook(chip: str, rig: RigView, metrics: Metrics, runs_out: np.ndarray, medium_min: np.ndarray) -> ChipOutlook:
    peak = metrics[("peak",)]
    limit = rig.chips[chip].max_concentration
    limit_um = None if limit is None else magnitude(limit, "concentration")
    over = np.zeros(peak.size, bool) if limit_um is None else peak > limit_um * (1 + 1e-9)
    return ChipOutlook(
        chip,
        limit_um,
        float(np.mean(over)),
        float(np.mean(runs_out)),
        {key[1]: float(np.mean(v)) for key, v in metrics.items() if key[0] == "trip"},
        Spread.of(peak, "uM"),
        Spread.of(medium_min, "mL"),
        [Readout(key[1], key[2], Spread.of(v, key[3])) for key, v in metrics.items() if key[0] == "readout"],
    )


def _assumptions(protocol: Protocol, rig: RigView, timeline: Timeline, from_fit: bool) -> list[str]:
    notes = [
        "doses are computed from each chip's nominal medium volume (as the runner does), so a chip filled "
        "short receives a higher concentration",
        "the timeline (hold_until durations, the worst-case proposal of a loop) is the nominal chip's",
        f"the batched solver runs at rtol {RTOL:g}, atol {ATOL:g}",
    ]
    if not from_fit:
        notes.append("no fit given: parameters drawn around the model's defaults")
    for interlock in protocol.interlocks:
        if not any(c.observable for c in matching_channels(rig, interlock.channel)):
            notes.append(f"interlock '{interlock}': the twin does not predict '{interlock.channel}'; not counted")
    return notes + [a for a in timeline.assumptions if a not in notes]


__all__ = [
    "OBSERVABLES",
    "RTOL",
    "ATOL",
    "ChipOutlook",
    "Readout",
    "Spread",
    "VirtualChipsError",
    "VirtualChipsReport",
    "batched",
    "pooled",
    "held_for",
    "virtual_chips",
]
