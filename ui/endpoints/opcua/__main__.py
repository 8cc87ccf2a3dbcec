"""``python -m ui.endpoints.opcua --db URL --endpoint opc.tcp://HOST:PORT [--anonymous read|off]
[--security sign-encrypt,sign[,none]] [--certificate-dir DIR] [--certificate FILE --private-key FILE]
[--trust-clients listed|all]``.

The lab supervisor starts this as its own process; it serves until SIGTERM or SIGINT. A user error
(bad URL, unreachable store, port taken) is one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from urllib.parse import urlsplit

from store import make_engine
from twin.errors import ChipTwinError
from ui.endpoints.opcua.access import Anonymous
from ui.endpoints.opcua.errors import EndpointError
from ui.endpoints.opcua.security import DEFAULT_POLICIES, Security, TrustClients, describe, parse_policies
from ui.endpoints.opcua.server import DEFAULT_POLL_PERIOD_S, Endpoint
from ui.errors import EXIT_USER_ERROR


def endpoint_url(text: str) -> str:
    """``text`` if it is ``opc.tcp://HOST:PORT``; EndpointError naming the fix otherwise."""
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "opc.tcp" or not parts.hostname or port is None:
        raise EndpointError(f"--endpoint {text!r} is not opc.tcp://HOST:PORT; write e.g. opc.tcp://0.0.0.0:4840")
    return text


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ui.endpoints.opcua", description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="the store's URL (sqlite:///… or postgresql+psycopg://…)")
    parser.add_argument("--endpoint", required=True, help="opc.tcp://HOST:PORT to listen on")
    parser.add_argument("--anonymous", choices=[a.value for a in Anonymous], default=Anonymous.READ.value)
    parser.add_argument("--poll-period-s", type=float, default=DEFAULT_POLL_PERIOD_S, help="store poll period, s")
    parser.add_argument(
        "--security",
        default=",".join(p.value for p in DEFAULT_POLICIES),
        help="policies offered, comma-separated: sign-encrypt, sign, none (none only if you list it)",
    )
    parser.add_argument(
        "--certificate-dir", type=Path, default=Path("opcua-pki"), help="server certificate, trusted/ and rejected/"
    )
    parser.add_argument("--certificate", type=Path, help="the lab's own server certificate (DER or PEM)")
    parser.add_argument("--private-key", type=Path, help="the private key of --certificate (PEM)")
    parser.add_argument("--trust-clients", choices=[t.value for t in TrustClients], default=TrustClients.LISTED.value)
    return parser.parse_args(argv)


async def _serve(endpoint: Endpoint) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await endpoint.start()
    except OSError as error:
        raise EndpointError(
            f"cannot listen on {endpoint.url} ({error.strerror or error}); choose a free port"
        ) from None
    print(
        f"OPC UA endpoint {endpoint.url} serving (anonymous {endpoint.anonymous}; security {describe(endpoint.security)})",
        flush=True,
    )
    await endpoint.serve(stop)


def main(argv: list[str] | None = None) -> int:
    arguments = _arguments(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        if not arguments.poll_period_s > 0:
            raise EndpointError("--poll-period-s must be above 0 s; the default is 0.5 s")
        url = endpoint_url(arguments.endpoint)
        security = Security(
            parse_policies(arguments.security),
            arguments.certificate_dir,
            arguments.certificate,
            arguments.private_key,
            TrustClients(arguments.trust_clients),
        )
        engine = make_engine(arguments.db)
        endpoint = Endpoint(engine, url, Anonymous(arguments.anonymous), arguments.poll_period_s, security)
        asyncio.run(_serve(endpoint))
    except ChipTwinError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
