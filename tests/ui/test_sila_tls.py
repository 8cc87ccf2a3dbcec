"""The SiLA 2 server's start: TLS from a directory (a self-signed pair made once, kept), plain text on loopback only,
and a bad command line answered in one line with exit 2."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.net import free_loopback_port
from tests.ui.test_sila_server import REPO, Client, _prepared_store
from ui.endpoints.sila.__main__ import main
from ui.endpoints.sila.errors import SilaEndpointError
from ui.endpoints.sila.server import Address, start


def test_a_bad_command_line_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    """In this process through the entry point's main (the subprocess below covers the real start)."""
    cases = {
        ("--address", "0.0.0.0:50052", "--insecure"): "--insecure serves plain text, allowed on loopback only",
        ("--address", "nonsense", "--insecure"): "address 'nonsense' is not HOST:PORT; fix: write it like",
        ("--address", "127.0.0.1:50052"): "give --tls-dir DIR",
        ("--address", "127.0.0.1:50052", "--insecure", "--tls-dir", str(tmp_path)): "either --insecure or --tls-dir",
        ("--address", "127.0.0.1:50052", "--insecure", "--db", str(tmp_path / "none.db")): "there is no store at",
        ("--address", "127.0.0.1:50052", "--insecure", "--log-level", "loud"): "log level 'loud' is not one of",
    }
    for args, message in cases.items():
        monkeypatch.setattr(sys, "argv", ["python -m ui.endpoints.sila", *args])
        with pytest.raises(SystemExit) as ended:
            main()
        assert ended.value.code == 2, args
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (args, lines)


def test_a_client_that_trusts_the_made_certificate_talks_tls(sqlite_url, tmp_path):
    _prepared_store(sqlite_url)
    tls_dir, port = tmp_path / "tls", free_loopback_port()
    log = tmp_path / "server.log"
    args = ["--db", sqlite_url, "--address", f"127.0.0.1:{port}", "--tls-dir", str(tls_dir)]
    with log.open("w") as log_file:
        server = subprocess.Popen([sys.executable, "-m", "ui.endpoints.sila", *args], cwd=REPO, stderr=log_file)
    client = None
    try:
        client = Client(port, ca=_wait_for(tls_dir / "cert.pem"))
        assert any("RunQueue" in f for f in client.reply()["ready"]), log.read_text()
        assert client.call("Channels", "ListChannels") == {"ok": [[]]}  # a new store: no channel yet
        assert (tls_dir / "key.pem").stat().st_mode & 0o077 == 0  # the private key is its owner's only
        uuid_before = (tls_dir / "server_uuid.txt").read_text()
    finally:
        if client is not None:
            client.close()
        server.terminate()
        server.wait(timeout=60)
    assert "TLS" in log.read_text() and "Traceback" not in log.read_text()
    assert uuid_before.strip() in log.read_text()


def _wait_for(path: Path, timeout_s: float = 120.0) -> Path:
    deadline = time.monotonic() + timeout_s
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert path.exists(), f"the server made no {path.name} in {timeout_s} s"
    time.sleep(0.2)  # written just now: let the write finish
    return path


def test_a_taken_port_is_refused_not_shared():
    """gRPC would bind a port another server holds (SO_REUSEPORT) and split the calls between them."""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = Address("127.0.0.1", holder.getsockname()[1])
        with pytest.raises(SilaEndpointError, match=f"cannot listen on 127.0.0.1:{taken.port}: .*fix: choose a free"):
            start(None, taken, tls=None)  # refused before the server is touched
