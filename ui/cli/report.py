"""`chiptwin report RUN --out run.pdf`: a run's study report, for the study file.

reportlab, matplotlib and the calibration stack load inside the command, so `chiptwin --help`
and every other command stay fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ui.cli.store import DbOption
from ui.report.errors import ReportError

RunArgument = Annotated[int, typer.Argument(help="The run's number (the panel and `chiptwin demo` show it).")]


def write_file(out: Path, content: bytes) -> None:
    try:
        out.write_bytes(content)
    except OSError as exc:
        raise ReportError(f"cannot write {out}: {exc.strerror}; choose another --out") from None


def report_command(
    run: RunArgument,
    out: Annotated[Path, typer.Option("--out", "-o", help="The PDF to write.")] = Path("run.pdf"),
    db: DbOption = None,
) -> None:
    """Write the run's study report as PDF: protocol and its hash, rig, chips, doses, samples and assays,
    alarms, fits with plots and 95 % intervals, proposals and signed decisions, audit chain status."""
    from store import open_store
    from ui.report.gather import gather
    from ui.report.pdf import render
    from ui.report.plots import fit_figure

    engine = open_store(db)
    try:
        content = gather(engine, run)
        pdf = render(content, lambda fit: fit_figure(engine, run, fit))
    finally:
        engine.dispose()
    write_file(out, pdf)
    status = "intact" if content.audit.intact else f"BROKEN ({len(content.audit.problems)} problems)"
    typer.echo(
        f"run {run} ({content.run.protocol_name}): report written to {out} ({len(pdf) / 1024:.0f} KiB) — "
        f"{len(content.chips)} chips, {len(content.doses)} doses, {len(content.assays)} assay results, "
        f"{len(content.fits)} chip fits, {len(content.proposals)} proposals, audit chain {status}"
    )


def register(app: typer.Typer) -> None:
    """Add `report` to ``app``."""
    app.command("report")(report_command)
