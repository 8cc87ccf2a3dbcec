"""The loop steps on the rig: calibrate → propose → approve → execute, each once per step index.

A fit, a proposal and an approval are rows keyed by the step that made them (a real column,
``step_index``), so a resumed run finds them instead of redoing them. They are written through
``store.repositories`` only; the fit travels as a ``FitRecord`` and the proposal as typed
``ChipDesign``s (their dose a quantity) and are serialised once, at the store's edge. An
approval outside the policy's bounds parks the run (instruments in their safe state), tells
people, and waits for a PanelRequest approve/reject (or the step's timeout) — while the request
watcher keeps answering.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from calibration.errors import CalibrationError
from calibration.io.record import FitRecord
from instruments.clock import holding
from protocols.language.quantities import magnitude
from protocols.language.rig_view import rig_view_from_rig_file
from protocols.language.steps import Approve, Calibrate, Dose, Propose, Step
from protocols.run.actions import HOURS, StepAction, chips_of, dose_chips, sample_exists, take_sample
from store.repositories import fits, proposals
from store.repositories.fits import NewFit
from store.repositories.proposals import NewProposal
from store.schema import AssayResult, Sample
from store.states import ProposalStatus

if TYPE_CHECKING:
    from types import ModuleType

    from protocols.loop.decide import ChipDesign


def _loop() -> ModuleType:
    """The loop's decisions (fits, designs), imported on first use: they pull in scipy, pandas and emcee,
    seconds of start-up a runner of a protocol without loop steps (and every resumed runner) would wait for."""
    from protocols.loop import decide

    return decide


DEFAULT_APPROVAL_TIMEOUT_H = 12.0


def calibrate(runner: Any, index: int, step: Calibrate, started_s: float) -> dict[str, Any]:
    ctx = runner.ctx
    if (row := fits.for_step(ctx.recorder.engine, ctx.run_id, index)) is not None:
        return {"fit_id": row.id, "reused": True}
    with ctx.recorder.engine.connect() as c:  # wait for the assay results of the samples already taken
        due = c.execute(
            select(func.max(AssayResult.imported_utc_s))
            .join(Sample, Sample.id == AssayResult.sample_id)
            .where(Sample.run_id == ctx.run_id)
        ).scalar()
    if due is not None:
        runner.control.sleep_until(max(due, ctx.clock.now_s()))
    chips = chips_of(runner, step)
    previous: dict[str, dict[str, float]] = {}
    try:
        previous = {c: r.estimates() for c, r in _chip_fits(ctx)[1].items()}
    except CalibrationError:
        pass
    with holding(ctx.clock):  # the fit is charged its real duration, not rate x duration (docs/clock.md)
        per_chip, n_rows = _loop().calibrate(
            ctx.recorder.engine, ctx.run_id, ctx.clock.now_s(), step.parameters, chips, step.model, previous
        )
    record = _combined(per_chip)
    estimates = {
        chip: {n: {"estimate": v.estimate, "ci95": v.ci95} for n, v in r.theta.items()} for chip, r in per_chip.items()
    }
    with ctx.recorder.tx() as c:
        fit_id = fits.add(
            c,
            NewFit(
                model=record.model,
                model_version=record.model_version,
                method=record.method,
                record_json=record.to_json(),
                minus2ll=record.minus2ll,
                aic=record.aic,
                bic=record.bic,
                converged=record.converged,
                wall_time_s=record.wall_time_s,
                created_utc_s=ctx.clock.now_s(),
                warnings=record.warnings,
                run_id=ctx.run_id,
                step_index=index,
                chips=tuple(chips),
                n_rows=n_rows,
            ),
        )
        ctx.recorder.audit(c, "fit.recorded", "fit", fit_id, {"step": index, "estimates": estimates})
    return {"fit_id": fit_id, "rows": n_rows, "wall_time_s": record.wall_time_s}


def _combined(per_chip: dict[str, FitRecord]) -> FitRecord:
    """One record for the step: the first chip's, summed over chips, with every chip's record inside."""
    return replace(
        next(iter(per_chip.values())),
        method="individual",
        chips=dict(per_chip),
        wall_time_s=sum(r.wall_time_s for r in per_chip.values()),
        minus2ll=sum(r.minus2ll for r in per_chip.values()),
        converged=all(r.converged for r in per_chip.values()),
    )


def _chip_fits(ctx: Any) -> tuple[int, dict[str, FitRecord]]:
    """The run's latest fit: its id and each chip's record."""
    row = fits.latest(ctx.recorder.engine, ctx.run_id)
    if row is None:
        raise CalibrationError("propose needs a fit first; put a calibrate step before it")
    record = FitRecord.from_dict(json.loads(row.record_json))
    return row.id, dict(record.chips) or {json.loads(row.data_selection_json)["chips"][0]: record}


def propose(runner: Any, index: int, step: Propose, started_s: float) -> dict[str, Any]:
    with holding(runner.ctx.clock):  # a compute step: charged its real duration (docs/clock.md)
        return _propose(runner, index, step)


def _propose(runner: Any, index: int, step: Propose) -> dict[str, Any]:
    ctx = runner.ctx
    engine = ctx.recorder.engine
    if (row := proposals.for_step(engine, ctx.run_id, index)) is not None:
        return {"proposal_id": row.id, "reused": True}
    fit_id, chip_fits = _chip_fits(ctx)
    doses = [magnitude(d, "concentration") for d in step.doses]
    schedules = [[magnitude(t, "time") for t in s] for s in step.schedules]
    sample_ml = magnitude(step.sample_volume, "volume") if step.sample_volume is not None else 0.02
    designs: dict[str, ChipDesign] = {}
    for chip in chips_of(runner, step):
        spec = ctx.rig.chip(chip)
        constants = {
            "v_medium_ml": spec.v_medium_ml,
            "v_cell_ml": spec.v_cell_ml,
            "n_cells_million": spec.n_cells_million,
            "kla_per_h": spec.kla_per_h or 5.0,
        }
        try:
            designs[chip] = _loop().propose(
                chip_fits[chip], _loop().design_space(chip, doses, schedules, sample_ml, constants)
            )
        except CalibrationError as exc:
            designs[chip] = _loop().fallback_design(chip, doses, schedules, sample_ml, str(exc))
    view = rig_view_from_rig_file(ctx.rig.spec)
    predicted = {chip: {"observables": d.predicted, "parameters": d.expected} for chip, d in designs.items()}
    checks = [check for chip, d in designs.items() for check in _loop().safety_checks(view.chips[chip], d)]
    with ctx.recorder.tx() as c:
        pid = proposals.add(
            c,
            NewProposal(
                run_id=ctx.run_id,
                fit_id=fit_id,
                step_index=index,
                design={chip: d.to_document() for chip, d in designs.items()},
                predicted={"chips": predicted, "checks": checks},
                expected_information_gain=sum(d.utility for d in designs.values()),
                created_utc_s=ctx.clock.now_s(),
            ),
        )
        ctx.recorder.audit(c, "proposal.created", "proposal", pid, {"step": index, "designer": _loop().DESIGNER})
    return {"proposal_id": pid, "designer": _loop().DESIGNER}


def _designs(proposal: Any) -> dict[str, ChipDesign]:
    """The proposal's typed designs, from the row's JSON (the store's edge)."""
    return {
        chip: _loop().ChipDesign.from_document({"chip": chip, **d})
        for chip, d in json.loads(proposal.design_json)["chips"].items()
    }


def _decide(
    ctx: Any, proposal_id: int, decision: ProposalStatus, actor: str, reason: str, approval_id: int | None = None
) -> None:
    """Record the decision; a signed Approval the panel already wrote is not written twice. A decision's
    time is wall-clock time (as a person's is), never the run's possibly accelerated clock."""
    with ctx.recorder.tx() as c:
        if approval_id is None:
            approval_id = proposals.add_approval(c, proposal_id, actor, decision, reason, time.time())
            ctx.recorder.seal(
                c, "approval", approval_id, f"approval.{decision}", {"proposal_id": proposal_id}, actor=actor
            )
        proposals.set_status(c, proposal_id, decision)
        ctx.recorder.audit(
            c,
            f"proposal.{decision}",
            "proposal",
            proposal_id,
            {"approval_id": approval_id, "reason": reason},
            actor=actor,
        )


def approve(runner: Any, index: int, step: Approve, started_s: float) -> dict[str, Any]:
    ctx = runner.ctx
    proposal = proposals.latest(ctx.recorder.engine, ctx.run_id)
    if proposal is None or proposal.status != ProposalStatus.PENDING:
        return {"proposal": None if proposal is None else proposal.status}
    designs = _designs(proposal).values()
    dose = max(d.dose_um for d in designs)
    sampled = max(d.sampled_ml for d in designs)
    max_dose = magnitude(step.max_dose, "concentration") if step.max_dose is not None else None
    max_ml = magnitude(step.max_sampled_volume_per_chip, "volume") if step.max_sampled_volume_per_chip else None
    if step.policy == "auto_within_bounds" and _loop().within_bounds(dose, sampled, max_dose, max_ml):
        why = f"dose {dose:g} uM <= {max_dose:g} uM; sampled {sampled * 1000:g} uL <= {max_ml * 1000:g} uL per chip"
        _decide(ctx, proposal.id, ProposalStatus.APPROVED, f"policy:{step.policy}", why)
        return {"proposal_id": proposal.id, "decision": "approved", "by": f"policy:{step.policy}"}
    return _wait_for_person(runner, proposal.id, step, dose, sampled)


def _wait_for_person(runner: Any, proposal_id: int, step: Approve, dose: float, sampled: float) -> dict[str, Any]:
    ctx = runner.ctx
    why = f"proposal {proposal_id} ({dose:g} uM, {sampled * 1000:g} uL sampled per chip) needs a person ({step.policy})"
    ctx.devices.safe_state()  # the safe holding step (no recirculation pump to set to hold_flow on this rig)
    ctx.recorder.set_state(ctx.run_id, "parked", f"waiting for approval: {why}")
    ctx.recorder.alarm(ctx.rig_id, ctx.run_id, "info", "approval", f"waiting for approval: {why}")
    if ctx.notifier is not None:
        ctx.notifier.approval(proposal_id, f"waiting for approval: {why}")
    timeout_h = magnitude(step.timeout, "time") if step.timeout is not None else DEFAULT_APPROVAL_TIMEOUT_H
    decided = runner.control.wait_for(
        lambda: runner.control.decisions.get(proposal_id), ctx.clock.now_s() + timeout_h * HOURS, 0.05
    )
    if decided is None:
        with ctx.recorder.tx() as c:
            proposals.set_status(c, proposal_id, ProposalStatus.EXPIRED)
        ctx.recorder.alarm(ctx.rig_id, ctx.run_id, "warning", "approval", f"proposal {proposal_id} expired unapproved")
        decided = {"decision": "expired", "actor": "runner"}
    else:
        _decide(
            ctx,
            proposal_id,
            ProposalStatus(decided["decision"]),
            decided["actor"],
            decided.get("reason", ""),
            decided.get("approval_id"),
        )
    ctx.recorder.set_state(ctx.run_id, "running", f"proposal {proposal_id} {decided['decision']}")
    return {"proposal_id": proposal_id, "decision": decided["decision"], "by": decided["actor"]}


def execute(runner: Any, index: int, step: Step, started_s: float) -> dict[str, Any]:
    ctx = runner.ctx
    proposal = proposals.latest(ctx.recorder.engine, ctx.run_id)
    if proposal is None or proposal.status not in (ProposalStatus.APPROVED, ProposalStatus.EXECUTED):
        return {"skipped": "no approved proposal" if proposal is None else f"proposal {proposal.status}"}
    designs = _designs(proposal)
    for chip, design in designs.items():
        dose_chips(runner, index, Dose(concentration=design.dose, chips=(chip,)), (chip,))
    plan = sorted((t, chip, k) for chip, d in designs.items() for k, t in enumerate(d.sample_times_h))
    taken = 0
    for t_h, chip, k in plan:
        runner.control.sleep_until(started_s + t_h * HOURS)
        label = f"run{ctx.run_id}/step{index}/{chip}/{k}"
        if sample_exists(ctx, label):
            continue
        taken += take_sample(runner, label, chip, designs[chip].sample_volume_ml, "lcms")
    with ctx.recorder.tx() as c:
        proposals.set_status(c, proposal.id, ProposalStatus.EXECUTED)
        ctx.recorder.audit(c, "proposal.executed", "proposal", proposal.id, {"step": index})
    return {"proposal_id": proposal.id, "samples": taken}


LOOP_STEPS: dict[str, StepAction] = {"calibrate": calibrate, "propose": propose, "approve": approve, "execute": execute}
