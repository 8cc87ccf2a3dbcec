"""Building and starting the SiLA 2 server: its three features over one store, plain on loopback or TLS."""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

from sila2.framework import DefinedExecutionError
from sila2.server import SilaServer
from sila2.server.encryption import generate_self_signed_certificate
from sqlalchemy import Engine

from ui.endpoints.sila import features
from ui.endpoints.sila.channels import ChannelsImpl
from ui.endpoints.sila.decisions import ProposalDecisionsImpl
from ui.endpoints.sila.errors import SilaEndpointError
from ui.endpoints.sila.run_queue import RunQueueImpl

SERVER_TYPE = "ChipTwinLab"
VENDOR_URL = "https://github.com/chiptwin/chiptwin"
VERSION = "1.0"


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_address(text: str) -> Address:
    """HOST:PORT (an IPv6 host in brackets, [::1]:50052) → Address."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SilaEndpointError(f"address {text!r} is not HOST:PORT; fix: write it like 127.0.0.1:50052")
    return Address(host, int(port))


def build(engine: Engine, server_uuid: uuid.UUID, name: str = "ChipTwin lab") -> SilaServer:
    """A SiLA server with the RunQueue, Channels and ProposalDecisions features over ``engine``."""
    server = SilaServer(
        server_name=name,
        server_type=SERVER_TYPE,
        server_description="ChipTwin organ-on-chip lab: run queue, channel readings, signed proposal decisions",
        server_version=VERSION,
        server_vendor_url=VENDOR_URL,
        server_uuid=server_uuid,
        max_grpc_workers=32,
        max_child_task_workers=32,
    )
    for identifier, implementation in (
        ("RunQueue", RunQueueImpl),
        ("Channels", ChannelsImpl),
        ("ProposalDecisions", ProposalDecisionsImpl),
    ):
        feature = features.load(identifier)
        server.set_feature_implementation(feature, implementation(server, feature, engine))
    return server


@dataclass(frozen=True)
class Tls:
    private_key: bytes
    certificate: bytes


def tls_material(directory: Path, server_uuid: uuid.UUID, host: str) -> Tls:
    """key.pem and cert.pem of ``directory``; a self-signed pair is made (and kept) the first time."""
    key, cert = directory / "key.pem", directory / "cert.pem"
    if key.exists() != cert.exists():
        raise SilaEndpointError(
            f"{directory} holds only one of key.pem and cert.pem; fix: add the other or remove both"
        )
    if not key.exists():
        try:
            directory.mkdir(parents=True, exist_ok=True)
            private_key, certificate = generate_self_signed_certificate(server_uuid, host)
            key.write_bytes(private_key)
            os.chmod(key, 0o600)  # the private key is the server's identity: its owner only
            cert.write_bytes(certificate)
        except OSError as exc:
            raise SilaEndpointError(
                f"cannot write the TLS files in {directory}: {exc.strerror}; fix: give a writable --tls-dir"
            ) from None
    return Tls(key.read_bytes(), cert.read_bytes())


def server_uuid_for(directory: Path | None, address: Address) -> uuid.UUID:
    """The same UUID across restarts: kept in the TLS directory, else derived from the address."""
    if directory is None:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"chiptwin-sila://{address.host}:{address.port}")
    path = directory / "server_uuid.txt"
    if path.exists():
        return uuid.UUID(path.read_text(encoding="utf-8").strip())
    directory.mkdir(parents=True, exist_ok=True)
    made = uuid.uuid4()
    path.write_text(f"{made}\n", encoding="utf-8")
    return made


def check_mode(address: Address, *, insecure: bool, tls_dir: Path | None) -> None:
    """Plain text on loopback only; otherwise TLS, from a directory. Checked before anything is opened."""
    if insecure and tls_dir is not None:
        raise SilaEndpointError("give either --insecure or --tls-dir, not both")
    if insecure and not address.loopback:
        raise SilaEndpointError(
            f"--insecure serves plain text, allowed on loopback only, not on {address.host}; "
            "fix: use 127.0.0.1, or drop --insecure and give --tls-dir"
        )
    if not insecure and tls_dir is None:
        raise SilaEndpointError(
            "give --tls-dir DIR (its key and certificate, made if missing) or, on loopback, --insecure"
        )


def _refuse_a_taken_port(address: Address) -> None:
    """gRPC binds with SO_REUSEPORT, so a second server on a taken port would share it silently; a plain bind cannot."""
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address.host, address.port))
        except OSError as exc:
            raise SilaEndpointError(
                f"cannot listen on {address.host}:{address.port}: {exc.strerror}; "
                "fix: choose a free port on an address of this machine"
            ) from None


def start(server: SilaServer, address: Address, *, tls: Tls | None, discovery: bool = False) -> None:
    """Listen on ``address``: TLS with ``tls``, plain text when it is None (check_mode allowed that)."""
    _refuse_a_taken_port(address)
    try:
        if tls is None:
            server.start_insecure(address.host, address.port, enable_discovery=discovery)
        else:
            server.start(
                address.host,
                address.port,
                private_key=tls.private_key,
                cert_chain=tls.certificate,
                enable_discovery=discovery,
            )
    except RuntimeError as exc:  # grpc: the port is taken, or the host is not this machine's
        raise SilaEndpointError(
            f"cannot listen on {address.host}:{address.port} ({exc}); fix: choose a free port on an address of this machine"
        ) from None


def _not_a_refusal(record: logging.LogRecord) -> bool:
    """sila2 logs every error a method raises with its traceback; a defined one is an answer, not a fault."""
    return not (record.exc_info and isinstance(record.exc_info[1], DefinedExecutionError))


LOG_LEVELS = ("debug", "info", "warning", "error")


def configure_logging(level: str = "warning") -> None:
    """One line per record on stderr, without the tracebacks of refusals the client is told about."""
    if level.lower() not in LOG_LEVELS:
        raise SilaEndpointError(f"log level {level!r} is not one of {', '.join(LOG_LEVELS)}; fix: pick one of them")
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_not_a_refusal)
