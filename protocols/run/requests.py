"""Panel requests are rows: a watcher thread answers them, so none is dropped while the runner is busy.

Every ``PanelRequest`` of the run in state ``pending`` is handled in order of its id within
``POLL_WALL_S`` (a tenth of a second), whatever the step thread is doing — waiting,
dosing, fitting or itself stopped — and acknowledged (``state`` done or refused,
``acknowledged_utc_s``, ``response``) with an audit entry naming who asked.

Kinds: ``pause`` (safe state, then paused), ``resume``, ``abort`` (safe state, then the
step thread stops), ``approve`` / ``reject`` (payload ``{"proposal_id": N, "reason": "…"}``).
A pause waits at most a few seconds for an in-flight dose to finish, so that it does not
cut a dose in half; an interlock never waits.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from sqlalchemy import select, update

from protocols.run.control import Control
from protocols.run.record import Recorder
from store.schema import PanelRequest

POLL_WALL_S = 0.1
DOSE_GRACE_WALL_S = 5.0
KINDS = ("pause", "resume", "abort", "approve", "reject")


class RequestWatcher:
    def __init__(self, recorder: Recorder, run_id: int, control: Control, dose_lock: threading.Lock) -> None:
        self.recorder, self.run_id, self.control, self.dose_lock = recorder, run_id, control, dose_lock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"requests-run{run_id}", daemon=True)
        self.handled: list[tuple[int, str, str]] = []

    def start(self) -> RequestWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _loop(self) -> None:
        while not self._stop.wait(POLL_WALL_S):
            try:
                self.poll_once()
            except Exception as exc:  # noqa: BLE001 - the watcher must outlive a busy database
                try:
                    self.recorder.alarm(None, self.run_id, "warning", "requests", f"request watcher: {exc}")
                except Exception:  # noqa: BLE001 - the store is away: raising here would end the watcher
                    continue

    def poll_once(self) -> int:
        with self.recorder.engine.connect() as c:
            rows = c.execute(
                select(PanelRequest)
                .where(PanelRequest.run_id == self.run_id, PanelRequest.state == "pending")
                .order_by(PanelRequest.id)
            ).all()
        for row in rows:
            self._handle(PanelRequest(**row._mapping))
        return len(rows)

    def _handle(self, request: PanelRequest) -> None:
        payload = json.loads(request.payload_json or "{}")
        state, response = self._act(request, payload)
        with self.recorder.tx() as c:
            c.execute(
                update(PanelRequest)
                .where(PanelRequest.id == request.id)
                .values(state=state, acknowledged_utc_s=self.recorder.now_s(), response=response)
            )
            self.recorder.audit(
                c,
                f"request.{request.kind}",
                "panelrequest",
                request.id,
                {"state": state, "response": response, **payload},
                actor=request.requested_by,
            )
        self.handled.append((request.id, request.kind, state))

    def _act(self, request: PanelRequest, payload: dict[str, Any]) -> tuple[str, str]:
        who, kind = request.requested_by, request.kind
        if kind == "pause":
            got = self.dose_lock.acquire(timeout=DOSE_GRACE_WALL_S)
            try:
                errors = self.control.stop("paused", f"paused by {who}")
            finally:
                if got:
                    self.dose_lock.release()
            self.recorder.set_state(self.run_id, "paused", f"requested by {who}", actor=who)
            return "done", "paused; instruments in their safe state" + (f" (errors: {errors})" if errors else "")
        if kind == "resume":
            if not self.control.resume():
                return "refused", f"the run is {self.control.state}, not paused or parked"
            self.recorder.set_state(self.run_id, "running", f"resumed by {who}", actor=who)
            return "done", "resumed"
        if kind == "abort":
            self.control.stop("aborted", f"aborted by {who}")
            # recorded at once: a runner killed before its step thread notices is still aborted
            self.recorder.set_state(self.run_id, "aborted", f"aborted by {who}", actor=who)
            return "done", "aborted; instruments in their safe state"
        if kind in ("approve", "reject"):
            if "proposal_id" not in payload:
                return "refused", 'approve/reject needs payload {"proposal_id": N}'
            self.control.decide(
                int(payload["proposal_id"]),
                {
                    "decision": "approved" if kind == "approve" else "rejected",
                    "actor": who,
                    "reason": str(payload.get("reason", "")),
                    "approval_id": payload.get("approval_id"),
                },
            )
            return "done", f"{kind} of proposal {payload['proposal_id']} passed to the runner"
        return "refused", f"unknown request kind {kind!r}; use one of {', '.join(KINDS)}"
