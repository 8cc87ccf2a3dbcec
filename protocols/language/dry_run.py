"""Dry-run a protocol on the twin: duration, volumes, medium, peak concentrations, interlock stops.

Pass 1 (``protocols.language.timeline``) lays the protocol out in time; pass 2 simulates each chip
with the ``liver_chip`` twin (default parameters, or the ones given) on a grid plus every
event time, then reads off each chip's peak medium concentration and evaluates every
interlock on the channels the twin predicts (oxygen). Channels the twin does not predict
(pressure) cannot trip in a dry run; the report says so.

    report = dry_run(protocol, rig)               # DryRunReport; report.to_dict() for JSON
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from protocols.errors import Problem
from protocols.language.interlock import Interlock
from protocols.language.protocol import Protocol
from protocols.language.quantities import magnitude
from protocols.language.rig_view import RigView, matching_channels
from protocols.language.timeline import Span, Timeline, Walker, first_held
from twin.catalogue import get_model
from twin.chip import simulate_chip

GRID_H = 5.0 / 60.0


@dataclass(frozen=True)
class InterlockTrip:
    """An interlock the twin predicts would trip: when, on which chip/channel, in which step."""

    interlock: str
    channel: str
    chip: str
    time_h: float
    value: float
    unit: str
    step: str
    line: int
    stops: bool

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class DryRunReport:
    duration_h: float
    pump_volume_ml: dict[str, float]
    sampled_volume_ml: dict[str, float]
    dosed_amount_nmol: dict[str, float]
    medium_ml: dict[str, list[tuple[float, float]]]
    peak_concentration_um: dict[str, tuple[float, float]]  # chip -> (peak, time_h)
    trips: list[InterlockTrip] = field(default_factory=list)
    holds: list[str] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def min_medium_ml(self) -> dict[str, float]:
        return {chip: min(v for _, v in points) for chip, points in self.medium_ml.items()}

    @property
    def stops(self) -> list[InterlockTrip]:
        return [t for t in self.trips if t.stops]

    def to_dict(self) -> dict:
        return {
            "duration_h": self.duration_h,
            "pump_volume_ml": self.pump_volume_ml,
            "sampled_volume_ml": self.sampled_volume_ml,
            "dosed_amount_nmol": self.dosed_amount_nmol,
            "min_medium_ml": self.min_medium_ml,
            "medium_ml": {c: [list(p) for p in pts] for c, pts in self.medium_ml.items()},
            "peak_concentration_um": {c: {"value": v, "time_h": t} for c, (v, t) in self.peak_concentration_um.items()},
            "interlock_trips": [t.to_dict() for t in self.trips],
            "holds": self.holds,
            "assumptions": self.assumptions,
            "problems": [p.to_dict() for p in self.problems],
        }


MAX_RUN_H = 8760.0  # a year: the longest run ChipTwin plans


def dry_run(
    protocol: Protocol,
    rig: RigView,
    params: Mapping[str, float] | None = None,
    chip_params: Mapping[str, Mapping[str, float]] | None = None,
    grid_h: float = GRID_H,
) -> DryRunReport:
    """Walk ``protocol`` on the twin of each chip of ``rig``; the protocol must have passed its checks.

    ``params`` are liver_chip parameters for every chip (default: the model's defaults);
    ``chip_params`` override them per chip.
    """
    chips = list(protocol.chips)
    per_chip = {c: {**(params or {}), **((chip_params or {}).get(c, {}))} or None for c in chips}
    constants = {c: {"V_m0": magnitude(rig.chips[c].medium_volume, "volume"), **rig.chips[c].constants} for c in chips}
    timeline = Walker(protocol, rig, Timeline(chips, per_chip, constants), grid_h).run()
    report = DryRunReport(
        timeline.time_h,
        dict(timeline.pumped_ml),
        {c: timeline.sampled_ml.get(c, 0.0) for c in chips},
        {c: timeline.dosed_nmol.get(c, 0.0) for c in chips},
        timeline.medium_ml,
        {},
        holds=timeline.holds,
        assumptions=timeline.assumptions,
        problems=timeline.problems,
    )
    if timeline.time_h > MAX_RUN_H:  # the twin is not run over decades of grid points
        report.problems.append(
            Problem(
                0,
                f"the protocol runs for {timeline.time_h:,.0f} h, more than a year ({MAX_RUN_H:,.0f} h)",
                "split it into shorter runs",
            )
        )
        return report
    for chip in chips:
        _simulate(protocol, rig, timeline, chip, grid_h, report)
    _untwinned_interlocks(protocol, rig, report)
    return report


def _simulate(
    protocol: Protocol, rig: RigView, timeline: Timeline, chip: str, grid_h: float, report: DryRunReport
) -> None:
    events = timeline.events[chip]
    times = np.unique(
        np.concatenate([np.arange(0.0, timeline.time_h, grid_h), [timeline.time_h], [e.time_h for e in events]])
    )
    result = simulate_chip(timeline.params[chip], events, times, timeline.constants[chip])
    conc = result["drug_medium"]
    peak = int(np.argmax(conc))
    report.peak_concentration_um[chip] = (float(conc[peak]), float(times[peak]))
    limit = rig.chips[chip].max_concentration
    if limit is not None and conc[peak] > magnitude(limit, "concentration") * (1 + 1e-9):
        span = _span_at(timeline.spans, float(times[peak]), dose_first=True)
        report.problems.append(
            Problem(
                span.line,
                (
                    f"chip '{chip}' is predicted to reach {conc[peak]:.4g} uM at {times[peak]:g} h, above its limit "
                    f"{limit:~g}"
                ),
                "dose less, or change the medium between doses",
            )
        )
    units = {o.name: o.unit for o in get_model(rig.chips[chip].model).observables}
    for interlock in protocol.interlocks:
        for channel in matching_channels(rig, interlock.channel):
            if channel.chip != chip or channel.observable not in result:
                continue
            values = result[channel.observable]
            tripped = first_held(times, values, interlock, units[channel.observable])
            if tripped is not None:
                span = _span_at(timeline.spans, tripped)
                value = float(values[np.searchsorted(times, tripped)])
                report.trips.append(
                    InterlockTrip(
                        str(interlock),
                        channel.name,
                        chip,
                        tripped,
                        value,
                        units[channel.observable],
                        span.kind,
                        span.line,
                        interlock.stops,
                    )
                )


def _span_at(spans: list[Span], time_h: float, dose_first: bool = False) -> Span:
    """The step running at ``time_h`` (a dose at that instant first, when asked)."""
    if dose_first:
        for span in reversed(spans):
            if span.kind in ("dose", "execute") and span.start_h <= time_h + 1e-9:
                return span
    for span in spans:
        if span.start_h <= time_h < span.end_h or (span.start_h == span.end_h == time_h):
            return span
    return spans[-1] if spans else Span("", 0, 0.0, 0.0)


def _untwinned_interlocks(protocol: Protocol, rig: RigView, report: DryRunReport) -> None:
    for interlock in protocol.interlocks:
        if not any(c.observable for c in matching_channels(rig, interlock.channel)):
            report.assumptions.append(
                f"interlock '{interlock}': the twin does not predict "
                f"'{interlock.channel}', so the dry run cannot say whether it trips"
            )


__all__ = ["DryRunReport", "Interlock", "InterlockTrip", "dry_run"]
