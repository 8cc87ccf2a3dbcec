"""Which pump serves a chip, and how much drug and liquid a dose step puts into it.

Shared by the checker (at the chip's nominal medium volume) and the dry run (at the
medium volume the chip has when the dose is given). Bare floats here are in the twin's
units: nmol, mL, µM (= nmol/mL).
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.errors import FieldError
from protocols.protocol import Protocol
from protocols.quantities import magnitude
from protocols.rig_view import InstrumentView, RigView, pumps
from protocols.steps import Dose


def pump_for(rig: RigView, chip: str, named: str | None, prefer: str) -> InstrumentView | None:
    """The pump a step names, else one of kind ``prefer`` that feeds ``chip``, else any of that kind;
    doses (``syringe_pump``) fall back to any pump feeding the chip, flows only to a peristaltic pump."""
    if named is not None:
        return rig.instruments.get(named)
    candidates = [p for p in pumps(rig) if prefer == "syringe_pump" or p.kind == prefer]
    for test in (lambda p: chip in p.feeds and p.kind == prefer, lambda p: chip in p.feeds and not p.feeds[1:],
                 lambda p: p.kind == prefer and not p.feeds, lambda p: p.kind == prefer, lambda p: True):
        found = [p for p in candidates if test(p)]
        if found:
            return found[0]
    return None


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
        raise FieldError(f"dose concentration {conc:g} uM cannot be reached from a {stock:g} uM stock",
                         "dose less, or use a stronger stock")
    amount = conc * medium_ml / (1.0 - conc / stock)
    return DoseAmount(amount, amount / stock)


def _volume_from_stock(amount_nmol: float, stock: float | None) -> float:
    if stock is None or stock <= 0:
        raise FieldError("dose has no volume and no stock concentration to compute it from",
                         "add volume = '10 uL' to the step, or stock = '10 mM' to [drug]")
    return amount_nmol / stock
