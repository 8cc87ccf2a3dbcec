"""The whole study report of a run, as PDF bytes: what `chiptwin report` writes and the panel offers."""

from __future__ import annotations

from sqlalchemy import Engine

from ui.report.gather import gather
from ui.report.pdf import render
from ui.report.plots import fit_figure


def run_report_pdf(engine: Engine, run_id: int) -> bytes:
    """The run's study report as PDF bytes (figures drawn from the store's data of each chip)."""
    report = gather(engine, run_id)
    return render(report, lambda fit: fit_figure(engine, run_id, fit))
