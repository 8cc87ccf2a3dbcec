"""The rig actions steps are made of: which chips, dose them, take a sample.

Shared by the rig's own steps (``step_exec``) and the closed loop's (``protocols.loop.steps``);
each is safe to re-enter after a crash (a dose goes through the intent log, a sample by its label).
"""

from __future__ import annotations

from typing import Any, Callable

from sqlalchemy import insert, select

from protocols.errors import FieldError
from protocols.language.plumbing import dose_amount, dosing_pump, stock_um
from protocols.language.quantities import magnitude
from protocols.language.rig_view import rig_view_from_rig_file
from protocols.language.steps import Dose, Step
from protocols.run.intents import DoseOrder, NeedsPerson
from store.schema import AssayResult, Sample

HOURS = 3600.0

# what a step kind does: (runner, step index, step, its start in clock seconds) -> the step's detail
StepAction = Callable[[Any, int, Any, float], dict[str, Any]]


def chips_of(runner: Any, step: Step) -> tuple[str, ...]:
    return tuple(getattr(step, "chips", ()) or runner.ctx.protocol.chips)


def dose_chips(runner: Any, index: int, step: Dose, chips: tuple[str, ...]) -> dict:
    ctx = runner.ctx
    view = rig_view_from_rig_file(ctx.rig.spec)
    out = {}
    for chip in chips:
        runner.control.check()
        try:
            pump = dosing_pump(view, chip, step.pump)
        except FieldError as exc:  # the rig file changed since the check: never guess a line
            raise NeedsPerson(f"step {index + 1}: {exc.message}; {exc.fix}") from None
        stock = stock_um(ctx.protocol, pump)
        amount = dose_amount(step, magnitude(view.chips[chip].medium_volume, "volume"), stock)
        order = DoseOrder(
            ctx.run_id,
            index,
            chip,
            ctx.ids["chips"][chip],
            pump.name,
            amount.volume_ml * 1000.0,
            float(stock or 0.0),
            ctx.protocol.drug.name,
        )
        out[chip] = runner.intents.dose(order)
    return {"dispensed_ul": out}


def sample_exists(ctx: Any, label: str) -> bool:
    with ctx.recorder.engine.connect() as c:
        return c.execute(select(Sample.id).where(Sample.label == label)).first() is not None


def take_sample(runner: Any, label: str, chip: str, volume_ml: float, assay: str) -> int:
    ctx = runner.ctx
    runner.control.check()
    outcome = ctx.bench.sample(chip, volume_ml) if ctx.bench is not None else None
    now = ctx.clock.now_s()
    with ctx.recorder.tx() as c:
        sample_id = c.execute(
            insert(Sample).values(
                label=label,
                run_id=ctx.run_id,
                chip_id=ctx.ids["chips"][chip],
                t_utc_s=now,
                volume_ml=volume_ml,
                assay=assay,
            )
        ).inserted_primary_key[0]
        for analyte, value in outcome.values_um.items() if outcome else ():
            c.execute(
                insert(AssayResult).values(
                    sample_id=sample_id,
                    analyte=analyte,
                    value=value,
                    unit="uM",
                    source_file="simulated-bench",
                    imported_utc_s=outcome.due_utc_s,
                )
            )
        ctx.recorder.audit(c, "sample.taken", "sample", sample_id, {"label": label, "volume_ml": volume_ml})
    return 1
