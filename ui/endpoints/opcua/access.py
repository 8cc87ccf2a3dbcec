"""Who may do what over OPC UA: sessions signed in against the store's users, methods by role.

A session's user name and password are checked by ``ui.panel.auth.sign_in`` (scrypt, audited as
``opcua.sign_in`` / ``opcua.sign_in_refused``). Reading and browsing: any signed-in user, and
anonymous sessions when the endpoint runs with ``--anonymous read``. Pause/Resume/Abort: a role
that may control *and* approve (scientist, admin) — remote control of a run from another system
is held to the panel's Runs page rule, so a technician reads but does not steer from outside.
"""

from __future__ import annotations

import contextvars
import functools
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Awaitable, Callable

from asyncua import ua
from asyncua.crypto.permission_rules import USER_TYPES, SimpleRoleRuleset, User, UserRole
from asyncua.server.internal_session import InternalSession
from sqlalchemy import Engine

from ui.panel.auth import SignedIn, current, sign_in
from ui.panel.errors import NotAllowed


class Anonymous(StrEnum):
    READ = "read"
    OFF = "off"


# The session whose request is being served: asyncua hands a method callback no session, so
# InternalSession.call (which awaits the callback in the same task) records it here.
CALLER: contextvars.ContextVar[User | None] = contextvars.ContextVar("opcua_caller", default=None)


@functools.cache
def record_callers() -> None:
    """Wrap ``InternalSession.call`` once per process so method callbacks can see their caller."""
    original: Callable[..., Awaitable[Any]] = InternalSession.call

    async def call(self: InternalSession, params: Any) -> Any:
        token = CALLER.set(self.user)
        try:
            return await original(self, params)
        finally:
            CALLER.reset(token)

    InternalSession.call = call  # type: ignore[method-assign]


@dataclass
class ChipTwinUser(User):
    """An asyncua user carrying the ChipTwin user it signed in as."""

    signed_in: SignedIn | None = None


class StoreUserManager:
    """asyncua's user manager over the store's users."""

    def __init__(self, engine: Engine, anonymous: Anonymous) -> None:
        self.engine, self.anonymous = engine, anonymous

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None):
        if username is None:  # an anonymous session (or a certificate, which ChipTwin does not map)
            return User(role=UserRole.Anonymous) if self.anonymous == Anonymous.READ else None
        who = sign_in(self.engine, username, password or "", where="opcua")
        if who is None:
            return None  # asyncua answers BadUserAccessDenied
        return ChipTwinUser(role=UserRole.User, name=who.username, signed_in=who)


def may_steer(engine: Engine, user: User | None) -> SignedIn:
    """The caller as the store has them now, if their role may pause/resume/abort; NotAllowed otherwise."""
    who = getattr(user, "signed_in", None)
    if who is None:
        raise NotAllowed("an anonymous session may only read; sign in as a scientist")
    now = current(engine, who)  # re-read: a role taken away since sign-in no longer counts
    if not (now.can_control and now.can_approve):
        raise NotAllowed(f"role {now.role} may not steer a run over OPC UA; a scientist or admin may")
    return now


# Requests an anonymous session may make: everything a signed-in user may, but Write and Call.
_NOT_FOR_ANONYMOUS = {
    ua.NodeId(ua.ObjectIds.WriteRequest_Encoding_DefaultBinary),
    ua.NodeId(ua.ObjectIds.CallRequest_Encoding_DefaultBinary),
}


class ReadOnlyAnonymous(SimpleRoleRuleset):
    """asyncua's role ruleset, with anonymous sessions allowed to read, browse and subscribe."""

    def __init__(self) -> None:
        super().__init__()
        readable = {ua.NodeId(i) for i in USER_TYPES} - _NOT_FOR_ANONYMOUS
        self._permission_dict[UserRole.Anonymous] = readable
