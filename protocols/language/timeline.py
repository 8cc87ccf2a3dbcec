"""Dry run, pass 1: the protocol laid out in time — events per chip, volumes, step spans.

Volumes change only by events, so the medium volume of each chip, the liquid drawn from
each pump and the volume sampled are known without integrating the model. The twin is
consulted only where the timeline depends on it: a ``hold_until`` on a channel the twin
predicts (e.g. oxygen) lasts until the predicted condition holds (or its timeout).
Loop steps are placeholders with stated, worst-case assumptions.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from protocols.errors import FieldError, Problem
from protocols.language.interlock import Condition
from protocols.language.plumbing import dose_amount, dosing_pump, flow_pump, stock_um
from protocols.language.protocol import Protocol
from protocols.language.quantities import magnitude
from protocols.language.rig_view import RigView, matching_channels
from protocols.language.steps import (
    Approve,
    Calibrate,
    Dose,
    Execute,
    HoldUntil,
    MediaChange,
    Perfuse,
    Prime,
    Propose,
    Sample,
    Step,
    Wait,
    expand,
)
from twin.catalogue import get_model
from twin.chip import Dose as DoseEvent
from twin.chip import Event, simulate_chip
from twin.chip import MediaChange as MediaChangeEvent
from twin.chip import Sample as SampleEvent


@dataclass(frozen=True)
class Span:
    """A step's place in time (hours from the start)."""

    kind: str
    line: int
    start_h: float
    end_h: float


@dataclass
class Timeline:
    chips: Sequence[str]
    params: Mapping[str, Mapping[str, float] | None]
    constants: Mapping[str, Mapping[str, float]]
    events: dict[str, list[Event]] = field(default_factory=lambda: defaultdict(list))
    medium_ml: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    pumped_ml: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    sampled_ml: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    dosed_nmol: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    spans: list[Span] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    holds: list[str] = field(default_factory=list)
    time_h: float = 0.0

    def volume(self, chip: str) -> float:
        return self.medium_ml[chip][-1][1]


def first_held(times_h: np.ndarray, values: np.ndarray, condition: Condition, unit: str) -> float | None:
    """The first time ``condition`` has held for its ``for`` duration on a sampled series."""
    since = None
    for t, v in zip(times_h, values):
        if not condition.holds(float(v), unit):
            since = None
            continue
        since = t if since is None else since
        if (t - since) * 3600.0 >= condition.for_s - 1e-6:
            return float(t)
    return None


class Walker:
    def __init__(self, protocol: Protocol, rig: RigView, timeline: Timeline, grid_h: float) -> None:
        self.protocol, self.rig, self.tl, self.grid_h = protocol, rig, timeline, grid_h
        self.proposal: tuple[float, tuple[float, ...], tuple[str, ...], float | None, float | None] | None = None
        for chip in timeline.chips:
            timeline.medium_ml[chip] = [(0.0, magnitude(rig.chips[chip].medium_volume, "volume"))]

    def run(self) -> Timeline:
        for step in expand(self.protocol.steps):
            start = self.tl.time_h
            getattr(self, f"_{step.kind}")(step)
            self.tl.spans.append(Span(step.kind, step.line, start, self.tl.time_h))
        return self.tl

    def _chips(self, step: Step) -> tuple[str, ...]:
        return getattr(step, "chips", ()) or tuple(self.tl.chips)

    def _set_volume(self, chip: str, volume_ml: float) -> None:
        self.tl.medium_ml[chip].append((self.tl.time_h, volume_ml))

    def _pumped(self, step: Prime | Perfuse, volume_ml: float) -> None:
        for chip in self._chips(step):
            pump = flow_pump(self.rig, chip, step.pump)
            if pump is None:
                self._assume(
                    f"line {step.line}: no perfusion pump feeds the chips; the {step.kind} flow is "
                    "taken as on-chip recirculation (no pump volume counted)"
                )
                continue
            self.tl.pumped_ml[pump.name] += volume_ml

    def _assume(self, text: str) -> None:
        if text not in self.tl.assumptions:
            self.tl.assumptions.append(text)

    def _prime(self, step: Prime) -> None:
        volume = magnitude(step.volume, "volume") if step.volume is not None else 0.0
        self._pumped(step, volume)
        if step.flow is not None and volume > 0:
            self.tl.time_h += volume / magnitude(step.flow, "flow")
        else:
            self._assume(f"line {step.line}: prime without volume and flow takes no time")

    def _perfuse(self, step: Perfuse) -> None:
        hours = magnitude(step.duration, "time")
        self._pumped(step, magnitude(step.flow, "flow") * hours)
        self.tl.time_h += hours

    def _wait(self, step: Wait) -> None:
        self.tl.time_h += magnitude(step.duration, "time")

    def _dose(self, step: Dose) -> None:
        for chip in self._chips(step):
            try:
                pump = dosing_pump(self.rig, chip, step.pump)
                dose = dose_amount(step, self.tl.volume(chip), stock_um(self.protocol, pump))
            except FieldError as exc:
                self.tl.problems.append(Problem(step.line, exc.message, exc.fix))
                continue
            self.tl.events[chip].append(DoseEvent(self.tl.time_h, dose.amount_nmol, dose.volume_ml))
            self.tl.pumped_ml[pump.name if pump else "(no pump)"] += dose.volume_ml
            self.tl.dosed_nmol[chip] += dose.amount_nmol
            self._set_volume(chip, self.tl.volume(chip) + dose.volume_ml)

    def _sample(self, step: Sample) -> None:
        start, volume = self.tl.time_h, magnitude(step.volume, "volume")
        for offset in sorted(magnitude(t, "time") for t in step.at):
            self.tl.time_h = start + offset
            for chip in self._chips(step):
                self._take(chip, volume, step.line)

    def _take(self, chip: str, volume_ml: float, line: int) -> None:
        left, minimum = self.tl.volume(chip) - volume_ml, magnitude(self.rig.chips[chip].min_medium_volume, "volume")
        if left <= 0 or left < minimum:
            self.tl.problems.append(
                Problem(
                    line,
                    (
                        f"sample of {volume_ml * 1000:g} uL at {self.tl.time_h:g} h would leave chip '{chip}' with "
                        f"{left * 1000:.4g} uL of medium (minimum {minimum * 1000:g} uL)"
                    ),
                    "take smaller or fewer samples, or add a media_change before",
                )
            )
            return
        self.tl.events[chip].append(SampleEvent(self.tl.time_h, volume_ml))
        self.tl.sampled_ml[chip] += volume_ml
        self._set_volume(chip, left)

    def _media_change(self, step: MediaChange) -> None:
        for chip in self._chips(step):
            nominal = self.rig.chips[chip].medium_volume
            volume = magnitude(step.volume if step.volume is not None else nominal, "volume")
            conc = magnitude(step.concentration, "concentration") if step.concentration is not None else 0.0
            self.tl.events[chip].append(MediaChangeEvent(self.tl.time_h, volume, conc))
            self._set_volume(chip, volume)

    def _hold_until(self, step: HoldUntil) -> None:
        timeout = magnitude(step.timeout, "time")
        channels = matching_channels(self.rig, step.condition.channel)
        predicted = [c for c in channels if c.observable and c.chip in self.tl.chips]
        if not predicted:
            self._assume(
                f"line {step.line}: hold_until on '{step.condition.channel}' (not predicted "
                "by the twin) is assumed to hold at once"
            )
            return
        times = self.tl.time_h + np.append(np.arange(0.0, timeout, self.grid_h), timeout)
        reached = [self._probe(c.chip, c.observable, step.condition, times) for c in predicted]
        if any(r is None for r in reached):
            self.tl.time_h += timeout
            self.tl.holds.append(
                f"line {step.line}: hold_until '{step.condition}' is predicted to time out after "
                f"{timeout:g} h (then {step.on_timeout})"
            )
        else:
            self.tl.time_h = max(reached)

    def _probe(self, chip: str, observable: str, condition: Condition, times: np.ndarray) -> float | None:
        result = simulate_chip(
            self.tl.params.get(chip), self.tl.events[chip], times, self.tl.constants[chip], [observable]
        )
        unit = next(o.unit for o in get_model(self.rig.chips[chip].model).observables if o.name == observable)
        return first_held(times, result[observable], condition, unit)

    def _calibrate(self, step: Calibrate) -> None:
        window = f"the last {step.window:~g}" if step.window is not None else "all data so far"
        self._assume(
            f"line {step.line}: calibrate ({step.model}: {', '.join(step.parameters) or 'all'}"
            f" on {window}) takes no protocol time in the dry run"
        )

    def _propose(self, step: Propose) -> None:
        dose = max((magnitude(d, "concentration") for d in step.doses), default=0.0)
        schedule = max(step.schedules, key=lambda s: (len(s), max(s, default=0)), default=())
        times = tuple(sorted(magnitude(t, "time") for t in schedule))
        sample = magnitude(step.sample_volume, "volume") if step.sample_volume is not None else None
        volume = magnitude(step.dose_volume, "volume") if step.dose_volume is not None else None
        self.proposal = (dose, times, self._chips(step), sample, volume)
        self._assume(
            f"line {step.line}: propose is taken to choose the worst case for safety: "
            f"{dose:g} uM (the largest dose level) with the schedule {list(times)} h "
            f"on {', '.join(self._chips(step))}"
        )

    def _approve(self, step: Approve) -> None:
        dose, times, _, sample, _ = self.proposal or (0.0, (), (), None, None)
        sampled = (sample or 0.0) * len(times)
        outside = step.policy == "manual" or (
            (step.max_dose is not None and dose > magnitude(step.max_dose, "concentration"))
            or (
                step.max_sampled_volume_per_chip is not None
                and sampled > magnitude(step.max_sampled_volume_per_chip, "volume")
            )
        )
        if outside:
            self.tl.holds.append(
                f"line {step.line}: approve ({step.policy}) would hold the chips until a person "
                f"approves (worst case {dose:g} uM, {sampled * 1000:g} uL sampled per chip); "
                "the dry run assumes approval"
            )

    def _execute(self, step: Execute) -> None:
        dose, times, chips, sample, volume = self.proposal or (0.0, (), (), None, None)
        if dose > 0:
            self._dose(
                Dose(
                    concentration=f"{dose} uM",
                    volume=f"{volume} mL" if volume is not None else None,
                    chips=chips,
                    line=step.line,
                )
            )
        if times and sample:
            self._sample(Sample(volume=f"{sample} mL", at=[f"{t} h" for t in times], chips=chips, line=step.line))
