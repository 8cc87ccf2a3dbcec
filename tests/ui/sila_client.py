"""A SiLA 2 client in its own process, as a lab scheduler would be: the generic ``sila2`` client, no ChipTwin code.

Driven over stdin/stdout, one JSON line per request and reply (the test decides what to call):

    ["call", FEATURE, COMMAND, ARG…]  → {"ok": RESPONSES} or {"error": IDENTIFIER, "message": TEXT}
    ["observe", QUEUE_ID, TIMEOUT_S]  → {"observing": UUID}, then {"statuses": [...], "final": [...]}

Usage: python tests/ui/sila_client.py HOST PORT [CA_CERT_PEM]  (plain text without a CA file)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from sila2.client import SilaClient
from sila2.framework import DefinedExecutionError


def plain(value: object) -> object:
    """Responses (named tuples, lists of them) as JSON-ready lists and values."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def reply(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def call(client: SilaClient, feature: str, command: str, args: list[object]) -> None:
    try:
        reply({"ok": plain(getattr(getattr(client, feature), command)(*args))})
    except DefinedExecutionError as exc:
        reply({"error": exc.identifier, "message": exc.message})


def observe(client: SilaClient, queue_id: int, timeout_s: float) -> None:
    statuses: list[object] = []
    instance = client.RunQueue.ObserveRun(queue_id)
    subscription = instance.subscribe_to_intermediate_responses()
    subscription.add_callback(lambda status: statuses.append(plain(status[0])))
    reply({"observing": str(instance.execution_uuid)})
    deadline = time.monotonic() + timeout_s
    while not instance.done and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        final = plain(instance.get_responses())
    except DefinedExecutionError as exc:
        final = {"error": exc.identifier, "message": exc.message}
    subscription.cancel()
    time.sleep(0.2)  # let the last callback land
    reply({"statuses": statuses, "final": final, "progress": instance.progress})


def connected(host: str, port: int, ca: bytes | None, timeout_s: float = 120.0) -> SilaClient:
    """A client, once the server answers (it may still be starting: both are started together)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if ca is None:
                return SilaClient(host, port, insecure=True)
            return SilaClient(host, port, root_certs=ca)
        except Exception:  # noqa: BLE001 (grpc's connection errors vary by version)
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    ca = Path(sys.argv[3]).read_bytes() if len(sys.argv) > 3 else None  # TLS, trusting this certificate
    with connected(host, port, ca) as client:
        reply({"ready": sorted(str(f) for f in client.SiLAService.ImplementedFeatures.get())})
        for line in sys.stdin:
            request = json.loads(line)
            if request[0] == "call":
                call(client, request[1], request[2], request[3:])
            elif request[0] == "observe":
                observe(client, int(request[1]), float(request[2]))


if __name__ == "__main__":
    main()
