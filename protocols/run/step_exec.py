"""What each step does on the rig. Every function is safe to re-enter after a crash.

``started_s`` is the step's start in clock time, from the checkpoint, so a resumed wait
ends when it would have, and a resumed sample step takes the samples still due.
"""

from __future__ import annotations

from typing import Any

from protocols.language.quantities import magnitude
from protocols.language.rig_view import rig_view_from_rig_file
from protocols.language.steps import Dose, HoldUntil, MediaChange, Step
from protocols.language.steps import Sample as SampleStep
from protocols.run.actions import HOURS, StepAction, chips_of, dose_chips, sample_exists, take_sample
from protocols.run.control import Aborted


def _duration_h(step: Step) -> float:
    if getattr(step, "duration", None) is not None:
        return magnitude(step.duration, "time")
    volume, flow = getattr(step, "volume", None), getattr(step, "flow", None)
    return magnitude(volume, "volume") / magnitude(flow, "flow") if volume is not None and flow is not None else 0.0


def _timed(runner: Any, index: int, step: Step, started_s: float) -> dict:
    """prime / perfuse / wait: the rig has no recirculation pump to command; the time passes."""
    end_s = runner.control.sleep_until(started_s + _duration_h(step) * HOURS)
    return {"ended_clock_s": end_s, "flow": str(getattr(step, "flow", "") or "")}


def _hold_until(runner: Any, index: int, step: HoldUntil, started_s: float) -> dict:
    landings = runner.control.landings if runner.control.stepped else None
    if landings is not None:  # a stepped clock lands on the watched channels' slots (protocols.run.landings)
        landings.extra = set(runner.monitor.watch(step.condition).units)
        landings.catch_up(runner.ctx.clock.now_s())  # a late poll is in before the watch starts: it sees slots only
    watch = runner.monitor.hold(step.condition)
    try:
        met = runner.control.wait_for(watch.all_held, started_s + magnitude(step.timeout, "time") * HOURS, 0.02)
    finally:
        runner.monitor.release(watch)
        if landings is not None:
            landings.extra = set()
    if met:
        return {"met": True}
    ctx = runner.ctx
    message = f"hold_until {step.condition} not met within {step.timeout:~g}"
    ctx.recorder.alarm(ctx.rig_id, ctx.run_id, "warning", "hold_until", f"{message}; on_timeout {step.on_timeout}")
    if step.on_timeout == "abort":
        runner.control.stop("aborted", message)
        raise Aborted(message)
    if step.on_timeout == "safe_state":
        runner.control.stop("parked", message)
        ctx.recorder.set_state(ctx.run_id, "parked", message)
        runner.control.check()
    return {"met": False, "on_timeout": step.on_timeout}


def _dose(runner: Any, index: int, step: Dose, started_s: float) -> dict:
    return dose_chips(runner, index, step, chips_of(runner, step))


def sample_chips(
    runner: Any,
    index: int,
    chips: tuple[str, ...],
    times_h: list[float],
    volume_ml: float,
    assay: str,
    started_s: float,
) -> dict:
    ctx = runner.ctx
    taken = 0
    for k, offset_h in enumerate(sorted(times_h)):
        runner.control.sleep_until(started_s + offset_h * HOURS)
        for chip in chips:
            label = f"run{ctx.run_id}/step{index}/{chip}/{k}"
            if sample_exists(ctx, label):
                continue
            taken += take_sample(runner, label, chip, volume_ml, assay)
    return {"samples": taken}


def _sample(runner: Any, index: int, step: SampleStep, started_s: float) -> dict:
    times = [magnitude(t, "time") for t in step.at]
    return sample_chips(
        runner, index, chips_of(runner, step), times, magnitude(step.volume, "volume"), step.assay, started_s
    )


def _media_change(runner: Any, index: int, step: MediaChange, started_s: float) -> dict:
    ctx = runner.ctx
    view = rig_view_from_rig_file(ctx.rig.spec)
    applied = []
    conc = magnitude(step.concentration, "concentration") if step.concentration is not None else 0.0
    volume = None
    for chip in chips_of(runner, step):
        volume = (
            magnitude(step.volume, "volume")
            if step.volume is not None
            else magnitude(view.chips[chip].medium_volume, "volume")
        )
        if ctx.bench is not None and ctx.bench.media_change(chip, volume, conc):
            applied.append(chip)
    if ctx.bench is None:
        ctx.recorder.alarm(
            ctx.rig_id,
            ctx.run_id,
            "info",
            "media_change",
            f"step {index}: change the media of {', '.join(chips_of(runner, step))} (manual)",
        )
    return {"applied": applied, "t_utc_s": ctx.clock.now_s(), "volume_ml": volume, "conc_um": conc}


# step kind → what it does on the rig; the runner adds the closed loop's four (protocols.loop.steps)
RIG_STEPS: dict[str, StepAction] = {
    "prime": _timed,
    "perfuse": _timed,
    "wait": _timed,
    "hold_until": _hold_until,
    "dose": _dose,
    "sample": _sample,
    "media_change": _media_change,
}
