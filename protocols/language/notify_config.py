"""The ``[notify]`` table of a protocol: where alarms and "waiting for approval" go (delivery: protocols.run.notify)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EVENTS = ("alarm", "approval")
EMAIL_KEYS = ("host", "port", "from", "to", "starttls", "username", "password_env", "timeout_s")
KEYS = ("email", "webhook", "on", "retries", "timeout_s")
RETRIES, TIMEOUT_S, BACKOFF_WALL_S = 3, 5.0, 0.2


@dataclass(frozen=True)
class NotifyConfig:
    email: dict | None = None
    webhook: str | None = None
    on: tuple[str, ...] = EVENTS
    retries: int = RETRIES
    timeout_s: float = TIMEOUT_S


def check_config(raw: Any) -> tuple[NotifyConfig | None, list[tuple[tuple, str, str]]]:
    """The ``[notify]`` table → config and problems ``(key path, message, fix)``."""
    if not isinstance(raw, dict):
        return None, [((), "'notify' must be a table", "write it as a [notify] section")]
    problems = [((k,), f"[notify] has no field '{k}'", f"use one of {', '.join(KEYS)}") for k in raw if k not in KEYS]
    email, webhook, on = raw.get("email"), raw.get("webhook"), raw.get("on", list(EVENTS))
    if email is not None and not isinstance(email, dict):
        problems.append((("email",), "notify email must be a table", "write email = { host = ..., to = [...] }"))
        email = None
    problems += [
        (("email", k), f"notify email has no field '{k}'", f"use one of {', '.join(EMAIL_KEYS)}")
        for k in email or {}
        if k not in EMAIL_KEYS
    ]
    problems += [
        (("email",), f"notify email needs '{k}'", f"add {k} = ... to the email table")
        for k in ("host", "from", "to")
        if email is not None and k not in email
    ]
    if webhook is not None and not (isinstance(webhook, str) and webhook.startswith(("http://", "https://"))):
        problems.append(
            (("webhook",), f"notify webhook {webhook!r} is not an http(s) URL", 'write webhook = "https://host/path"')
        )
    if not isinstance(on, list) or any(e not in EVENTS for e in on):
        problems.append((("on",), f"notify on = {on!r} names an unknown event", f"use a list of {', '.join(EVENTS)}"))
        on = list(EVENTS)
    if email is None and webhook is None:
        problems.append(((), "[notify] has neither email nor webhook", 'add email = {...} or webhook = "http://..."'))
    return NotifyConfig(
        email, webhook, tuple(on), int(raw.get("retries", RETRIES)), float(raw.get("timeout_s", TIMEOUT_S))
    ), problems
