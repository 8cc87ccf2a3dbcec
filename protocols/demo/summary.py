"""The demo's summary as people read it: what the loop learned, with units, intervals and the truth.

``summary_tables(summary)`` takes ``protocols.demo.setup.run_demo``'s summary (the same dict as
``chiptwin demo --json``) and returns rich tables: the run in one line, the last round's
estimate per chip and parameter beside the simulator's hidden truth, and the learning curve.
"""

from __future__ import annotations

import math
from typing import Any

from rich.table import Table

from twin.catalogue import get_model

MODEL = "liver_chip"


def parameter_units(model: str = MODEL) -> dict[str, str]:
    """Each parameter's unit as the catalogue states it (``vmax`` → ``nmol/h``)."""
    return {p.name: p.unit for p in get_model(model).parameters}


def summary_tables(summary: dict[str, Any]) -> list[Table]:
    tables = [_headline(summary)]
    if summary["per_round"]:
        tables += [_estimates(summary), _learning(summary)]
    return tables


def _headline(summary: dict[str, Any]) -> Table:
    alarms = summary["alarms"]
    by_severity = {s: sum(1 for a in alarms if a["severity"] == s) for s in ("critical", "warning", "info")}
    counted = ", ".join(f"{n} {s}" for s, n in by_severity.items() if n) or "none"
    table = Table(
        title=f"chiptwin demo: run {summary['run_id']} {summary['state']} in {summary['wall_time_s']:.0f} s "
        f"(wall clock)",
        show_header=False,
    )
    table.add_row("rounds of calibrate → propose → approve → dose", str(summary["rounds"]))
    table.add_row("readings stored", f"{summary['readings_stored']:,}")
    table.add_row("doses confirmed by the pumps", str(summary["doses_executed"]))
    table.add_row("alarms (this run and its devices)", counted)
    for alarm in alarms[:5]:
        table.add_row(f"  {alarm['severity']}: {alarm['source']}", alarm["message"][:100])
    return table


def _estimates(summary: dict[str, Any]) -> Table:
    last = summary["per_round"][-1]
    units = parameter_units()
    table = Table(
        title=f"What round {last['round']} learned (fit {last['fit_id']}), beside the simulator's hidden truth"
    )
    for column in ("chip", "parameter", "estimate", "95 % interval", "unit", "truth", "truth inside", "error"):
        table.add_column(column, justify="left" if column in ("chip", "parameter", "unit") else "right")
    for chip, params in sorted(last["estimates"].items()):
        for name, value in params.items():
            truth = summary["truth"].get(chip, {}).get(name)
            ci = value.get("ci95")
            inside = "n/a" if truth is None or not ci else ("yes" if ci[0] <= truth <= ci[1] else "no")
            table.add_row(
                chip,
                name,
                _g(value["estimate"]),
                f"{_g(ci[0])} – {_g(ci[1])}" if ci else "not estimable",
                units.get(name, ""),
                _g(truth),
                inside,
                _error(value["estimate"], truth),
            )
    table.caption = "error: the estimate's factor from the truth (×1.10 = 10 % off either way)"
    return table


def _learning(summary: dict[str, Any]) -> Table:
    names = sorted({n for r in summary["per_round"] for n in r["error"]})
    table = Table(title="Learning curve: median over chips, per round")
    table.add_column("round")
    for name in names:
        table.add_column(f"{name} error", justify="right")
        table.add_column(f"{name} interval", justify="right")
    for r in summary["per_round"]:
        cells = []
        for name in names:
            err, width = r["error"].get(name), r["ci_width"].get(name)
            cells += ["n/a" if err is None else f"×{math.exp(err):.2f}", "n/a" if width is None else f"×{width:.3g}"]
        table.add_row(str(r["round"]), *cells)
    table.caption = (
        "error: factor between estimate and truth; interval: upper / lower bound of the 95 % interval "
        "(×1.5 is tight, ×40 says little)"
    )
    return table


def _g(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _error(estimate: float, truth: float | None) -> str:
    if truth is None or truth <= 0 or estimate <= 0:
        return "n/a"
    return f"×{math.exp(abs(math.log(estimate / truth))):.2f}"
