"""Checks of a built protocol against itself and against a rig, each problem with its line.

Self-consistency: chips of a step are the protocol's; calibrate names the model's
parameters; approve and execute follow a propose; auto-approval has bounds. Against the
rig: chips, pumps and channels exist; doses stay within the chip's maximum concentration
and the pump's/chip's maximum volume; flows within the pump's rate; interlock and
hold-until thresholds convert to the channel's unit.
"""

from __future__ import annotations

from typing import Iterator

import pint

from protocols.errors import FieldError, Problem
from protocols.language.interlock import Condition
from protocols.language.plumbing import dose_amount, dosing_pump, flow_pump, stock_um
from protocols.language.protocol import Path, Protocol
from protocols.language.quantities import magnitude
from protocols.language.rig_view import RigView, matching_channels
from protocols.language.steps import (
    MAX_STEPS,
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
    expand,
    expanded_count,
)
from twin.catalogue import get_model
from twin.errors import TwinError

Found = Iterator[tuple[Path, str, str]]  # (path, message, fix)


def check(protocol: Protocol, rig: RigView | None) -> list[Problem]:
    """Every problem of ``protocol`` (on ``rig`` when given), sorted by line."""
    found = [*_self_checks(protocol)]
    if rig is not None:
        found += [*_rig_checks(protocol, rig)]
    return [Problem(protocol.line(path), message, fix) for path, message, fix in found]


def _self_checks(protocol: Protocol) -> Found:
    for path, step in protocol.walk():
        for chip in getattr(step, "chips", ()):
            if chip not in protocol.chips:
                yield (
                    path + ("chips",),
                    f"{step.kind} step uses chip '{chip}', which [protocol] chips does not list",
                    f"use one of {', '.join(protocol.chips)} or add it to [protocol] chips",
                )
        yield from _positive(step, path)
        if isinstance(step, Calibrate):
            yield from _calibrate(step, path)
        if isinstance(step, Approve) and step.policy == "auto_within_bounds":
            for bound in ("max_dose", "max_sampled_volume_per_chip"):
                if getattr(step, bound) is None:
                    yield (
                        path,
                        f"approve policy auto_within_bounds needs {bound}",
                        f"add {bound} = {'50 uM' if bound == 'max_dose' else '200 uL'!r}",
                    )
    yield from _loop_order(protocol)


# Quantities that do nothing at zero: a sample of 0 uL or a dose of 0 nmol is a slip, not a plan.
MUST_BE_POSITIVE = {
    "sample": ("volume",),
    "dose": ("volume", "amount", "concentration"),
    "media_change": ("volume",),
    "prime": ("volume", "flow"),
    "perfuse": ("flow",),
}


def _positive(step: object, path: Path) -> Found:
    for name in MUST_BE_POSITIVE.get(getattr(step, "kind", ""), ()):
        value = getattr(step, name, None)
        if value is not None and not value.magnitude > 0:
            yield (
                path + (name,),
                f"{step.kind} {name} is {value:~g}, which does nothing",  # type: ignore[attr-defined]
                f"give a {name} above zero, or remove the step",
            )


def _calibrate(step: Calibrate, path: Path) -> Found:
    try:
        known = get_model(step.model).parameter_names
    except TwinError as exc:
        yield path + ("model",), str(exc), "use liver_chip"
        return
    for name in step.parameters:
        if name not in known:
            yield (
                path + ("parameters",),
                f"calibrate: model {step.model} has no parameter '{name}'",
                f"use some of {', '.join(known)}",
            )


def _loop_order(protocol: Protocol) -> Found:
    total = expanded_count(protocol.steps)
    if total > MAX_STEPS:
        yield (
            ("steps",),
            f"the protocol unrolls to {total:,} steps, more than the {MAX_STEPS:,} a run may have",
            "use fewer or shorter repeats",
        )
        return
    steps = expand(protocol.steps)
    if any(step.kind == "unbuilt" for step in steps):
        return  # a broken step may be the missing propose/approve; its own problem is reported
    proposed = approved = False
    for step in steps:
        path = _path_of(protocol, step)
        if isinstance(step, Propose):
            proposed, approved = True, False
        elif isinstance(step, Approve) and not proposed:
            yield path, "approve comes before any propose step", "put a propose step before approve"
        elif isinstance(step, Approve):
            approved = True
        elif isinstance(step, Execute) and not approved:
            yield (
                path,
                "execute runs a proposal no approve step has approved",
                "put propose then approve before execute",
            )
        elif isinstance(step, Execute):
            proposed = approved = False


def _path_of(protocol: Protocol, target: object) -> Path:
    return next((path for path, step in protocol.walk() if step is target), ("steps",))


def _rig_checks(protocol: Protocol, rig: RigView) -> Found:
    for chip in protocol.chips:
        if chip not in rig.chips:
            yield (
                ("protocol", "chips"),
                f"chip '{chip}' is not on rig '{rig.name}'",
                f"use one of {', '.join(rig.chips) or '(none)'} or add the chip to the rig file",
            )
    yield from _stock(protocol, rig)
    for index, interlock in enumerate(protocol.interlocks):
        yield from _channel(rig, interlock, ("safety", "interlocks", index), f"interlock '{interlock}'")
    for path, step in protocol.walk():
        chips = [c for c in (getattr(step, "chips", ()) or protocol.chips) if c in rig.chips]
        if getattr(step, "pump", None) is not None:
            pump = rig.instruments.get(step.pump)
            if pump is None or not pump.is_pump:
                have = ", ".join(p.name for p in rig.instruments.values() if p.is_pump) or "(none)"
                yield (
                    path + ("pump",),
                    f"{step.kind} step uses pump '{step.pump}', which rig '{rig.name}' lacks",
                    f"use one of {have}",
                )
                continue
        if isinstance(step, Dose):
            yield from _dose(protocol, rig, step, path, chips)
        elif isinstance(step, (Perfuse, Prime)) and step.flow is not None:
            yield from _flow(rig, step, path, chips)
        elif isinstance(step, Sample):
            yield from _sample(rig, step, path, chips)
        elif isinstance(step, MediaChange) and step.volume is not None:
            yield from _media_change(rig, step, path, chips)
        elif isinstance(step, HoldUntil):
            yield from _channel(rig, step.condition, path + ("condition",), f"hold_until '{step.condition}'")
        elif isinstance(step, Propose):
            yield from _propose(rig, step, path, chips)


def _stock(protocol: Protocol, rig: RigView) -> Found:
    stock = protocol.drug.stock
    for pump in (p for p in rig.instruments.values() if p.stock_concentration is not None):
        own = pump.stock_concentration
        if (
            stock is not None
            and own.magnitude > 0
            and abs(magnitude(stock, "concentration") - magnitude(own, "concentration")) > 1e-9
        ):
            yield (
                ("drug", "stock"),
                f"[drug] stock {stock:~g} differs from the {own:~g} rig '{rig.name}' states for pump '{pump.name}'",
                "make them agree (or leave stock out to use the rig's)",
            )
            return


def _channel(rig: RigView, condition: Condition, path: Path, what: str) -> Found:
    channels = matching_channels(rig, condition.channel)
    if not channels:
        yield (
            path,
            f"{what}: rig '{rig.name}' has no channel '{condition.channel}'",
            f"use one of {', '.join(rig.channels) or '(none)'} (or a measurement such as oxygen)",
        )
    for channel in channels[:1]:
        try:
            condition.threshold.to(channel.unit)
        except (pint.errors.PintError, ValueError):
            yield (
                path,
                f"{what}: threshold {condition.threshold:~g} does not convert to channel "
                f"'{channel.name}' unit {channel.unit}",
                f"give the threshold in {channel.unit}",
            )


def _dose(protocol: Protocol, rig: RigView, step: Dose, path: Path, chips: list[str]) -> Found:
    field = "concentration" if step.concentration is not None else "amount"
    for name in chips:
        chip = rig.chips[name]
        try:
            pump = dosing_pump(rig, name, step.pump)
        except FieldError as exc:
            yield path + (("pump",) if step.pump is not None else ()), exc.message, exc.fix
            continue
        medium_ml = magnitude(chip.medium_volume, "volume")
        try:
            dose = dose_amount(step, medium_ml, stock_um(protocol, pump))
        except FieldError as exc:
            yield path + (field,), exc.message, exc.fix
            return
        conc_um = dose.amount_nmol / (medium_ml + dose.volume_ml)
        if chip.max_concentration is not None and conc_um > magnitude(chip.max_concentration, "concentration"):
            yield (
                path + (field,),
                f"dose gives chip '{name}' {conc_um:.3g} uM, above its limit {chip.max_concentration:~g}",
                f"dose at most {chip.max_concentration:~g}",
            )
        for limit, owner in ((pump.max_volume, f"pump '{pump.name}'"), (chip.max_dose_volume, f"chip '{name}'")):
            if limit is not None and dose.volume_ml > magnitude(limit, "volume") * (1 + 1e-9):
                yield (
                    path + ("volume" if step.volume is not None else field,),
                    f"dose volume {dose.volume_ml * 1000:.4g} uL is above {owner}'s maximum {limit:~g}",
                    f"add at most {limit:~g} per dose (split the dose, or use a stronger stock)",
                )


def _flow(rig: RigView, step: Perfuse | Prime, path: Path, chips: list[str]) -> Found:
    flow = magnitude(step.flow, "flow")
    for name in chips:
        pump = flow_pump(rig, name, step.pump)
        limits = [(rig.chips[name].max_flow, f"chip '{name}'")]
        limits += [(pump.max_rate, f"pump '{pump.name}'")] if pump is not None else []
        for limit, owner in limits:
            if limit is not None and flow > magnitude(limit, "flow") * (1 + 1e-9):
                yield (
                    path + ("flow",),
                    f"{step.kind} flow {step.flow:~g} is above {owner}'s maximum {limit:~g}",
                    f"perfuse at most {limit:~g}",
                )
                return


def _sample(rig: RigView, step: Sample, path: Path, chips: list[str]) -> Found:
    for name in chips:
        medium = rig.chips[name].medium_volume
        if step.volume >= medium:
            yield (
                path + ("volume",),
                f"sample of {step.volume:~g} is as large as chip '{name}' medium ({medium:~g})",
                "take a smaller sample",
            )


def _media_change(rig: RigView, step: MediaChange, path: Path, chips: list[str]) -> Found:
    for name in chips:
        medium = rig.chips[name].medium_volume
        if step.volume > medium * (1 + 1e-9):
            yield (
                path + ("volume",),
                f"media change to {step.volume:~g} is more than chip '{name}' holds ({medium:~g})",
                f"change at most {medium:~g} (or leave volume out for the chip's own)",
            )
            return


def _propose(rig: RigView, step: Propose, path: Path, chips: list[str]) -> Found:
    for name in chips:
        limit = rig.chips[name].max_concentration
        for dose in step.doses:
            if limit is not None and dose > limit:
                yield (
                    path + ("doses",),
                    f"propose dose level {dose:~g} is above chip '{name}' limit {limit:~g}",
                    f"keep dose levels at or below {limit:~g}",
                )
