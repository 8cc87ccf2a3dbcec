"""A dosing regimen: ``"100 mg q12h x14 oral"`` — dose, interval, number of doses, route."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

from twin.errors import TwinError
from twin.units import to_unit

Route = Literal["iv", "oral"]
_ROUTES = {"iv": "iv", "oral": "oral", "po": "oral"}
_PATTERN = re.compile(
    r"^\s*(?P<dose>[0-9.eE+-]+\s*[^\s]+)\s+q\s*(?P<interval>[0-9.]+\s*[a-z]*)\s+x\s*(?P<n>\d+)\s+(?P<route>\w+)\s*$",
    re.IGNORECASE,
)
_FORMAT = "write it like '100 mg q12h x14 oral' (dose, interval, number of doses, iv or oral)"


class RegimenError(TwinError):
    """A regimen the twin cannot read."""


@dataclass(frozen=True)
class Regimen:
    """Equal doses every ``interval_h``; IV doses are boluses, oral doses go to a first-order depot."""

    dose_mg: float
    interval_h: float
    n_doses: int
    route: Route

    def __post_init__(self) -> None:
        if not (self.dose_mg > 0 and self.interval_h > 0 and self.n_doses >= 1):
            raise RegimenError(f"dose, interval and number of doses must be positive; got {self}")
        if self.route not in ("iv", "oral"):
            raise RegimenError(f"route must be 'iv' or 'oral'; got {self.route!r}")

    def with_dose(self, dose_mg: float) -> "Regimen":
        return replace(self, dose_mg=float(dose_mg))

    def __str__(self) -> str:
        return f"{self.dose_mg:g} mg q{self.interval_h:g}h x{self.n_doses} {self.route}"


def parse_regimen(text: str) -> Regimen:
    match = _PATTERN.match(text)
    if match is None:
        raise RegimenError(f"cannot read regimen {text!r}; {_FORMAT}")
    route = _ROUTES.get(match["route"].lower())
    if route is None:
        raise RegimenError(f"regimen {text!r}: unknown route {match['route']!r}; use iv or oral (po)")
    interval = match["interval"].strip()
    interval = interval if interval[-1].isalpha() else f"{interval} h"
    return Regimen(
        dose_mg=to_unit(match["dose"], "mg", what=f"regimen {text!r}: dose"),
        interval_h=to_unit(interval, "h", what=f"regimen {text!r}: interval"),
        n_doses=int(match["n"]),
        route=route,  # type: ignore[arg-type]
    )
