"""``python -m ui.endpoints.sila --db URL --address HOST:PORT [--insecure | --tls-dir DIR]``: serve until stopped.

The lab supervisor starts this as its own process; SIGTERM or Ctrl-C stops it cleanly.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer

from ui.errors import EXIT_USER_ERROR, USER_ERRORS, command_line, report

app = command_line(add_completion=False, help="Serve ChipTwin's SiLA 2 features (run queue, channels, decisions).")


@app.command()
def serve(
    address: Annotated[str, typer.Option("--address", help="HOST:PORT to listen on, e.g. 127.0.0.1:50052")],
    db: Annotated[
        Optional[str], typer.Option("--db", help="store URL (default: CHIPTWIN_DB or the local file)")
    ] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="plain gRPC, loopback addresses only")] = False,
    tls_dir: Annotated[
        Optional[Path], typer.Option("--tls-dir", help="key.pem + cert.pem (a self-signed pair is made if missing)")
    ] = None,
    discovery: Annotated[
        bool, typer.Option("--discovery", help="announce the server by SiLA discovery (mDNS)")
    ] = False,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error")] = "warning",
) -> None:
    """Serve until SIGTERM or Ctrl-C."""
    from store import open_store
    from ui.endpoints.sila import server as sila

    sila.configure_logging(log_level)
    where = sila.parse_address(address)
    sila.check_mode(where, insecure=insecure, tls_dir=tls_dir)
    server_uuid = sila.server_uuid_for(tls_dir, where)
    tls = None if tls_dir is None else sila.tls_material(tls_dir, server_uuid, where.host)
    engine = open_store(db)
    server = sila.build(engine, server_uuid)
    sila.start(server, where, tls=tls, discovery=discovery)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    mode = "plain (loopback)" if insecure else "TLS"
    typer.echo(f"SiLA 2 server {server_uuid} listening on {where.host}:{where.port} ({mode})", err=True)
    try:
        stop.wait()
    finally:
        server.stop(grace_period=2.0)
        engine.dispose()


def main() -> None:
    """A user error is one line and exit 2 (a one-command app is not the group that maps them elsewhere)."""
    try:
        app()
    except USER_ERRORS as exc:
        report(exc)
        sys.exit(EXIT_USER_ERROR)


if __name__ == "__main__":
    main()
