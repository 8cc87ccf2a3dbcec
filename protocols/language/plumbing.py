"""Which pump serves a chip, and how much drug and liquid a dose step puts into it.

Shared by the checker (at the chip's nominal medium volume) and the dry run (at the
medium volume the chip has when the dose is given). Bare floats here are in the twin's
units: nmol, mL, µM (= nmol/mL).
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.errors import FieldError
from protocols.language.protocol import Protocol
from protocols.language.quantities import magnitude
from protocols.language.rig_view import InstrumentView, RigView, pumps
from protocols.language.steps import Dose


def dosing_pump(rig: RigView, chip: str, named: str | None) -> InstrumentView:
    """The one pump that doses ``chip``: the step's named pump if it feeds the chip, else the
    chip's own syringe pump (or a pump that feeds that chip alone). No fallback to another
    chip's pump: a dose through the wrong line is worse than no dose, so a chip with no pump
    of its own, or with two, is a FieldError the checker reports before anything runs."""
    if named is not None:
        pump = rig.instruments.get(named)
        if pump is None or not pump.is_pump:
            raise FieldError(
                f"the step names pump '{named}', which rig '{rig.name}' does not have",
                f"use one of {', '.join(p.name for p in pumps(rig)) or '(none)'}",
            )
        if chip not in pump.feeds:
            raise FieldError(
                f"pump '{named}' does not feed chip '{chip}' (it feeds {_listed(pump.feeds)})",
                f"name the pump that feeds '{chip}', or add '{chip}' to feeds of '{named}' in the rig file",
            )
        return pump
    feeding = [p for p in pumps(rig) if chip in p.feeds]
    candidates = [p for p in feeding if p.kind == "syringe_pump"] or [p for p in feeding if p.feeds == (chip,)]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise FieldError(
            f"no pump of rig '{rig.name}' feeds chip '{chip}', so nothing can dose it",
            f'add feeds = ["{chip}"] to the syringe pump that doses it in the rig file',
        )
    raise FieldError(
        f"pumps {', '.join(repr(p.name) for p in candidates)} all feed chip '{chip}'",
        "name the one that doses it in the step: pump = '...'",
    )


def flow_pump(rig: RigView, chip: str, named: str | None) -> InstrumentView | None:
    """The perfusion pump of a flow step: the named one, else a peristaltic pump feeding the
    chip, else one feeding no chip in particular; None means on-chip recirculation."""
    if named is not None:
        return rig.instruments.get(named)
    peristaltic = [p for p in pumps(rig) if p.kind == "peristaltic_pump"]
    for test in (lambda p: chip in p.feeds, lambda p: not p.feeds, lambda p: True):
        found = [p for p in peristaltic if test(p)]
        if found:
            return found[0]
    return None


def _listed(names: tuple[str, ...]) -> str:
    return ", ".join(repr(n) for n in names) if names else "no chip"


def stock_um(protocol: Protocol, pump: InstrumentView | None) -> float | None:
    """The drug concentration in the syringe: the protocol's ``[drug] stock``, else the rig's."""
    if protocol.drug.stock is not None:
        return magnitude(protocol.drug.stock, "concentration")
    if pump is not None and pump.stock_concentration is not None and pump.stock_concentration.magnitude > 0:
        return magnitude(pump.stock_concentration, "concentration")
    return None


@dataclass(frozen=True)
class DoseAmount:
    amount_nmol: float
    volume_ml: float


def dose_amount(step: Dose, medium_ml: float, stock: float | None) -> DoseAmount:
    """Drug and liquid one chip receives: ``concentration`` raises the medium concentration by
    that much (the added liquid included); ``amount`` is added as is. The volume is the
    step's, else amount / stock."""
    volume = None if step.volume is None else magnitude(step.volume, "volume")
    if step.amount is not None:
        amount = magnitude(step.amount, "amount")
        if volume is None:
            volume = _volume_from_stock(amount, stock)
        return DoseAmount(amount, volume)
    conc = magnitude(step.concentration, "concentration")
    if volume is not None:
        return DoseAmount(conc * (medium_ml + volume), volume)
    if stock is None:
        _volume_from_stock(0.0, None)
    if conc >= stock:
        raise FieldError(
            f"dose concentration {conc:g} uM cannot be reached from a {stock:g} uM stock",
            "dose less, or use a stronger stock",
        )
    amount = conc * medium_ml / (1.0 - conc / stock)
    return DoseAmount(amount, amount / stock)


def _volume_from_stock(amount_nmol: float, stock: float | None) -> float:
    if stock is None or stock <= 0:
        raise FieldError(
            "dose has no volume and no stock concentration to compute it from",
            "add volume = '10 uL' to the step, or stock = '10 mM' to [drug]",
        )
    return amount_nmol / stock
