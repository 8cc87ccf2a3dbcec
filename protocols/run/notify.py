"""Notifications: alarms and "waiting for approval" reach people off-site (SMTP e-mail or a webhook).

    [notify]
    email = { host = "smtp.lab.org", port = 587, from = "rig@lab.org", to = ["a@lab.org"],
              starttls = true, username = "rig", password_env = "CHIPTWIN_SMTP_PASSWORD" }
    webhook = "https://hooks.lab.org/chiptwin"      # POSTed JSON
    on = ["alarm", "approval"]                      # which events are sent (default: both)

Delivery runs on a daemon thread (a queue): no runner thread ever waits on a mail server.
Each message is tried ``retries`` times with a ``timeout_s`` socket timeout; one that cannot
be delivered is logged and becomes a ``warning`` Alarm (source ``notify``, itself not sent).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import smtplib
import threading
import time
import urllib.request
from email.message import EmailMessage
from typing import Any, Callable

from protocols.language.notify_config import BACKOFF_WALL_S, NotifyConfig

log = logging.getLogger(__name__)


class Notifier:
    """Formats and delivers messages about one run; ``warn(message)`` records a failed delivery."""

    def __init__(
        self,
        config: NotifyConfig,
        run_id: int,
        rig: str,
        chips: tuple[str, ...],
        protocol: str,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.config, self.run_id, self.rig, self.chips, self.protocol = config, run_id, rig, chips, protocol
        self.warn = warn
        self.sent: list[dict] = []  # delivered: channel, attempts and the message
        self.failed: list[dict] = []
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._deliver_loop, name=f"notify-run{run_id}", daemon=True).start()

    def alarm_hook(self, severity: str, source: str, message: str) -> None:
        """``Recorder.alarm_hook``: every alarm except the notifier's own and the approval notice."""
        if source == "notify" or (source == "approval" and message.startswith("waiting for approval")):
            return
        self.notify("alarm", f"{severity} alarm from {source}", message, severity=severity, source=source)

    def approval(self, proposal_id: int, message: str) -> None:
        self.notify("approval", f"proposal {proposal_id} is waiting for approval", message, proposal_id=proposal_id)

    def notify(self, event: str, title: str, message: str, **extra: Any) -> None:
        if event in self.config.on:
            self._queue.put(
                {
                    "event": event,
                    "title": title,
                    "message": message,
                    "run_id": self.run_id,
                    "rig": self.rig,
                    "chips": list(self.chips),
                    "protocol": self.protocol,
                    "t_unix_s": time.time(),
                    **extra,
                }
            )

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait (bounded) until every queued message was delivered or given up; True when drained."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self._queue.unfinished_tasks

    def _deliver_loop(self) -> None:
        while True:
            doc = self._queue.get()
            try:
                for channel, send in (("email", self._email), ("webhook", self._webhook)):
                    if getattr(self.config, channel):
                        self._with_retries(channel, send, doc)
            finally:
                self._queue.task_done()

    def _with_retries(self, channel: str, send: Callable[[dict], None], doc: dict) -> None:
        error: Exception | None = None
        for attempt in range(1, max(1, self.config.retries) + 1):
            try:
                send(doc)
                self.sent.append({"channel": channel, "attempts": attempt, **doc})
                return
            except Exception as exc:  # noqa: BLE001 - any delivery failure is reported, never raised
                error = exc
                time.sleep(BACKOFF_WALL_S * attempt)
        text = (
            f"{channel} notification '{doc['title']}' for run {self.run_id} not delivered "
            f"after {self.config.retries} attempts: {error}"
        )
        log.warning(text)
        self.failed.append({"channel": channel, "error": str(error), **doc})
        if self.warn is not None:
            try:
                self.warn(text)
            except Exception:  # noqa: BLE001 - a busy store must not kill the delivery thread
                log.exception("could not record the failed notification")

    def body(self, doc: dict) -> str:
        return (
            f"ChipTwin run {doc['run_id']} on rig {doc['rig']} (protocol '{doc['protocol']}')\n"
            f"chips: {', '.join(doc['chips'])}\nevent: {doc['event']} - {doc['title']}\n\n{doc['message']}\n"
        )

    def _email(self, doc: dict) -> None:
        cfg = self.config.email or {}
        message = EmailMessage()
        message["Subject"] = f"[ChipTwin] run {doc['run_id']} ({doc['rig']}): {doc['title']}"
        message["From"] = cfg["from"]
        message["To"] = ", ".join(cfg["to"] if isinstance(cfg["to"], list) else [cfg["to"]])
        message.set_content(self.body(doc))
        with smtplib.SMTP(
            cfg["host"], int(cfg.get("port", 25)), timeout=float(cfg.get("timeout_s", self.config.timeout_s))
        ) as smtp:
            if cfg.get("starttls"):
                smtp.starttls()
            if cfg.get("username"):
                smtp.login(cfg["username"], os.environ.get(cfg.get("password_env", ""), ""))
            smtp.send_message(message)

    def _webhook(self, doc: dict) -> None:
        data = json.dumps({**doc, "text": self.body(doc)}).encode()
        request = urllib.request.Request(
            str(self.config.webhook), data=data, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=self.config.timeout_s) as reply:  # noqa: S310 - configured URL
            if not 200 <= reply.status < 300:
                raise OSError(f"webhook answered HTTP {reply.status}")


def attach(ctx: Any) -> Notifier | None:
    """Build the run's notifier from its protocol's ``[notify]`` and hook it to the recorder's alarms."""
    if (config := getattr(ctx.protocol, "notify", None)) is None:
        return ctx.notifier
    rig_id, run_id = ctx.rig_id, ctx.run_id
    notifier = Notifier(
        config,
        run_id,
        ctx.rig.name,
        ctx.protocol.chips,
        ctx.protocol.name,
        warn=lambda text: ctx.recorder.alarm(rig_id, run_id, "warning", "notify", text),
    )
    ctx.notifier, ctx.recorder.alarm_hook = notifier, notifier.alarm_hook
    return notifier
