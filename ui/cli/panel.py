"""`chiptwin panel`: serve the Streamlit control panel (localhost by default).

The panel runs in a `streamlit run` subprocess; the store URL reaches it through
$CHIPTWIN_DB. The store is checked here first, so a wrong --db fails in one line.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ui.cli.store import DbOption

APP = Path(__file__).resolve().parents[1] / "panel" / "app.py"  # ui/panel/app.py


def streamlit_command(port: int, host: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.port",
        str(port),
        "--server.address",
        host,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--global.developmentMode",
        "false",
        "--client.toolbarMode",
        "minimal",
    ]


DEMO_USERS = {"demo-scientist": "scientist", "demo-technician": "technician"}


def demo_users(engine: Any) -> dict[str, str]:
    """The demo's scientist and technician, created or given new passwords: name → password.

    Fresh random passwords each time (shown once, never stored in clear), so a demo store
    copied elsewhere does not carry a known password."""
    from ui.panel.auth import add_user, list_users, set_active, set_password, set_role

    known = {u["username"] for u in list_users(engine)}
    passwords = {}
    for name, role in DEMO_USERS.items():
        password = secrets.token_urlsafe(9)
        if name in known:
            set_password(engine, name, password, actor="demo")
            set_role(engine, name, role, actor="demo")
            set_active(engine, name, True, actor="demo")
        else:
            add_user(engine, name, role, password, display_name=f"Demo {role}", actor="demo")
        passwords[name] = password
    return passwords


def panel(
    db: DbOption = None,
    port: Annotated[int, typer.Option("--port", help="TCP port to serve on.")] = 8501,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (0.0.0.0 serves the whole lab network).")
    ] = "127.0.0.1",
    with_demo_users: Annotated[
        bool,
        typer.Option(
            "--demo-users",
            help="Create (or renew) demo-scientist and demo-technician with new passwords, printed once.",
        ),
    ] = False,
) -> None:
    """Serve the control panel (localhost by default); Ctrl-C stops it."""
    from store import open_store
    from store.engine import ENV_VAR, resolve_url

    engine = open_store(db)  # refuses a missing store or an old schema before anything starts
    passwords = demo_users(engine) if with_demo_users else {}
    engine.dispose()
    env = {**os.environ, ENV_VAR: resolve_url(db)}
    typer.echo(f"ChipTwin panel on http://{host}:{port} (store {resolve_url(db)}); Ctrl-C stops it", err=True)
    for name, password in passwords.items():
        typer.echo(f"  sign in as {name} ({DEMO_USERS[name]}) with password {password}", err=True)
    process = subprocess.Popen(streamlit_command(port, host), env=env)
    signal.signal(signal.SIGTERM, _interrupted)  # `chiptwin demo` stops its panel with SIGTERM: stop streamlit too
    try:
        code = process.wait()
    except KeyboardInterrupt:
        process.terminate()
        code = process.wait(timeout=10)
    raise typer.Exit(code)


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def register(app: typer.Typer) -> None:
    """Add `panel` to ``app``."""
    app.command("panel")(panel)
