"""`chiptwin panel`: serve the Streamlit control panel (localhost by default).

The panel runs in a `streamlit run` subprocess; the store URL reaches it through
$CHIPTWIN_DB. The store is checked here first, so a wrong --db fails in one line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from store import open_store
from store.engine import ENV_VAR, resolve_url
from ui.cli_store import DbOption
from ui.errors import user_errors

APP = Path(__file__).resolve().parent / "panel" / "app.py"


def streamlit_command(port: int, host: str) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port), "--server.address", host,
            "--server.headless", "true", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            "--global.developmentMode", "false", "--client.toolbarMode", "minimal"]


@user_errors
def panel(
    db: DbOption = None,
    port: Annotated[int, typer.Option("--port", help="TCP port to serve on.")] = 8501,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0 serves the whole lab network).")]
    = "127.0.0.1",
) -> None:
    """Serve the control panel (localhost by default); Ctrl-C stops it."""
    open_store(db).dispose()  # refuses a missing store or an old schema before anything starts
    env = {**os.environ, ENV_VAR: resolve_url(db)}
    typer.echo(f"ChipTwin panel on http://{host}:{port} (store {resolve_url(db)}); Ctrl-C stops it", err=True)
    process = subprocess.Popen(streamlit_command(port, host), env=env)
    try:
        code = process.wait()
    except KeyboardInterrupt:
        process.terminate()
        code = process.wait(timeout=10)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add `panel` to ``app``."""
    app.command("panel")(panel)
