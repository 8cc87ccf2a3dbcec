"""The tables of `chiptwin protocol check --virtual-chips N` (the computation: protocols/language/virtual_chips.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from protocols.language.virtual_chips import Spread, VirtualChipsReport


def _p(report: VirtualChipsReport, p: float) -> str:
    """A probability ± its standard error; none (or all) of N: the rule of three's 95 % bound."""
    if p == 0.0:
        return f"0 (< {3 / report.n_chips:.1%})"
    if p == 1.0:
        return f"1 (> {1 - 3 / report.n_chips:.1%})"
    return f"{p:.1%} ± {report.standard_error(p):.1%}"


def _spread(s: Spread, scale: float = 1.0) -> str:
    return f"{s.p05 * scale:.4g} / {s.p50 * scale:.4g} / {s.p95 * scale:.4g}"


def print_virtual(report: VirtualChipsReport, console: Console) -> None:
    console.print(
        f"\n[bold]{report.n_chips:,} virtual copies of each chip[/bold] (seed {report.seed}; {report.source}; "
        f"between-chip CV {', '.join(f'{k} {v:.0%}' for k, v in report.between_chip_cv.items() if v)}) — "
        f"{report.wall_s:.1f} s wall, {report.cpu_s:.1f} s CPU"
    )
    risks = Table(title="Probability over the virtual chips (± Monte-Carlo standard error; 0: 95 % upper bound)")
    for column in ("chip", "peak over limit", "medium runs out", "peak (uM) 5/50/95 %", "lowest medium (uL) 5/50/95 %"):
        risks.add_column(column, justify="left" if column == "chip" else "right")
    for chip in report.chips:
        risks.add_row(
            chip.chip,
            _p(report, chip.p_over_limit) if chip.limit_um is not None else "no limit",
            _p(report, chip.p_medium_runs_out),
            _spread(chip.peak_concentration),
            _spread(chip.min_medium, 1e3),
        )
    console.print(risks)
    interlocks = sorted({name for chip in report.chips for name in chip.p_interlock})
    if interlocks:
        trips = Table(title="Probability that an interlock trips")
        trips.add_column("interlock")
        for chip in report.chips:
            trips.add_column(chip.chip, justify="right")
        for name in interlocks:
            trips.add_row(
                name, *(_p(report, c.p_interlock[name]) if name in c.p_interlock else "–" for c in report.chips)
            )
        console.print(trips)
    console.print(f"P(a run stops on an interlock, any chip): {_p(report, report.p_run_stops)}")
    readouts = Table(title="Predicted readouts, 5 / 50 / 95 %")
    for column in ("chip", "readout", "at (h)", "unit", "5 / 50 / 95 %"):
        readouts.add_column(column, justify="right" if column in ("at (h)", "5 / 50 / 95 %") else "left")
    for chip in report.chips:
        for r in chip.readouts:
            at = "whole run" if r.time_h is None else f"{r.time_h:.4g}"
            readouts.add_row(chip.chip, r.name, at, r.spread.unit, _spread(r.spread))
    console.print(readouts)
    for text in report.assumptions:
        console.print(f"[dim]assumed: {text}[/dim]")
