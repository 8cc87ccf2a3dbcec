"""`chiptwin export RUN --what assays|doses|samples|readings|lab --format csv|parquet --out FILE`."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer

from ui.cli.report import RunArgument, write_file
from ui.cli.store import DbOption
from ui.report.kinds import Format, What


def export_command(
    run: RunArgument,
    what: Annotated[What, typer.Option("--what", help="Which of the run's tables.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The file to write.")],
    fmt: Annotated[Format, typer.Option("--format", help="csv or parquet.")] = Format.CSV,
    db: DbOption = None,
) -> None:
    """Export one of a run's tables (units in the column names or a unit column); recorded in the audit trail.
    `--what lab` is the run's lab dataset, the CSV that `chiptwin fit` reads."""
    from store import open_store
    from store.audit import audit
    from ui.report.tables import table, to_bytes

    engine = open_store(db)
    try:
        frame = table(engine, run, what)
        write_file(out, to_bytes(frame, fmt))
        audit(
            engine,
            f"cli:{getpass.getuser()}",
            "data.export",
            entity=what.value,
            entity_id=run,
            payload={"run_id": run, "format": fmt.value, "rows": len(frame), "file": str(out)},
        )
    finally:
        engine.dispose()
    typer.echo(f"run {run}: {len(frame)} rows of {what.value} written to {out} ({fmt.value})")


def register(app: typer.Typer) -> None:
    """Add `export` to ``app``."""
    app.command("export")(export_command)
