"""The RunQueue feature: enqueue (checked and audited by protocols.lab.queueing), observe to the end, cancel."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from sila2.framework import DefinedExecutionError, Feature
from sila2.server import FeatureImplementationBase, SilaServer
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from protocols.errors import ProtocolError
from protocols.lab import queueing
from protocols.language.api import parse_protocol
from protocols.language.steps import expanded_count
from store.repositories import queue
from store.repositories.queue import UnknownQueueEntry
from ui.endpoints.sila.progress import progress
from ui.endpoints.sila.signing import queue_signer
from ui.panel import validators
from ui.panel.errors import InvalidInput, NotAllowed

POLL_S = 0.5  # how often an observed entry is re-read; a step lasts minutes, this is plenty
OUTAGE_RETRY_S = 2.0


def not_before_utc_s(text: str) -> float | None:
    """ISO 8601 with its UTC offset → UTC seconds; empty → None (as soon as the rig is free)."""
    text = validators.free_text("not before", text)
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"not before: cannot read {text[:40]!r}; write an ISO 8601 time like 2026-12-04T20:00:00+00:00"
        ) from None
    if when.tzinfo is None:
        raise InvalidInput(f"not before: {text!r} has no UTC offset; add one, like {text}+00:00")
    return when.timestamp()


class RunQueueImpl(FeatureImplementationBase):
    def __init__(self, parent_server: SilaServer, feature: Feature, engine: Engine) -> None:
        super().__init__(parent_server)
        self.feature = feature
        self.engine = engine
        self._stopping = threading.Event()

    def _error(self, identifier: str, exc: BaseException | str) -> DefinedExecutionError:
        return DefinedExecutionError(self.feature.defined_execution_errors[identifier], str(exc))

    def EnqueueRun(  # noqa: N802, N803 (SiLA identifiers)
        self,
        Rig: str,  # noqa: N803
        ProtocolName: str,  # noqa: N803
        ProtocolText: str,  # noqa: N803
        NotBefore: str,  # noqa: N803
        UserName: str,  # noqa: N803
        Password: str,  # noqa: N803
        *,
        metadata: Any,
    ) -> int:
        try:
            who = queue_signer(self.engine, UserName, Password)
        except NotAllowed as exc:
            raise self._error("NotAllowed", exc) from None
        try:
            return queueing.enqueue(
                self.engine,
                protocol_text=ProtocolText,
                protocol_name=validators.free_text("protocol name", ProtocolName) or "protocol.toml",
                rig_name=validators.required_text("rig", Rig, "liver4"),
                queued_by=who.username,
                not_before_utc_s=not_before_utc_s(NotBefore),
            )
        except (ProtocolError, InvalidInput) as exc:  # QueueRefused, ProtocolFileError, RigFileError
            raise self._error("QueueRefused", exc) from None

    def CancelQueued(  # noqa: N802
        self,
        QueueId: int,  # noqa: N803
        Reason: str,  # noqa: N803
        UserName: str,  # noqa: N803
        Password: str,  # noqa: N803
        *,
        metadata: Any,
    ) -> None:
        try:
            who = queue_signer(self.engine, UserName, Password)
        except NotAllowed as exc:
            raise self._error("NotAllowed", exc) from None
        try:
            reason = validators.required_text("reason", Reason, "wrong medium lot")
            queueing.cancel(self.engine, QueueId, by=who.username, reason=reason)
        except UnknownQueueEntry as exc:
            raise self._error("UnknownQueueEntry", exc) from None
        except (ProtocolError, InvalidInput) as exc:
            raise self._error("QueueRefused", exc) from None

    def ObserveRun(self, QueueId: int, *, metadata: Any, instance: Any) -> tuple[str, int, str]:  # noqa: N802, N803
        try:
            total = self._steps_total(QueueId)
            last = None
            instance.begin_execution()
            while not self._stopping.is_set():
                try:
                    now = progress(self.engine, QueueId, total)
                except DBAPIError:  # the store is restarting: an observer waits for it, as the runner does
                    self._stopping.wait(OUTAGE_RETRY_S)
                    continue
                if now.status() != last:
                    last = now.status()
                    instance.progress = now.fraction
                    instance.send_intermediate_response(last)
                if now.ended:
                    return (now.state, now.run_id, now.note)
                self._stopping.wait(POLL_S)
        except UnknownQueueEntry as exc:
            raise self._error("UnknownQueueEntry", exc) from None
        raise self._error("ObservationEnded", "the SiLA server is stopping; observe the entry again once it is back")

    def _steps_total(self, entry_id: int) -> int:
        """How many steps the queued protocol has (0 when its rig's file no longer reads)."""
        entry = queue.get(self.engine, entry_id)
        try:
            rig = queueing.rig_view(self.engine, entry.rig_name)
            protocol = parse_protocol(queue.protocol_text(self.engine, entry_id), rig, filename=entry.protocol_name)
        except ProtocolError:
            return 0
        return expanded_count(protocol.steps)  # repeats unrolled: the runner writes one step row per expanded step

    def stop(self) -> None:
        self._stopping.set()
        super().stop()
