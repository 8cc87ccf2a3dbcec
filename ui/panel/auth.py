"""Users and sign-in: scrypt password hashes in ``user.password_hash``, roles from ``role``.

Hash format: ``scrypt$<n>$<r>$<p>$<salt hex>$<key hex>`` (hashlib.scrypt, 16-byte random
salt, 32-byte key), so the cost can rise later without invalidating stored hashes. Every
sign-in attempt, successful or not, and every user change is written to the audit trail
(a change of a user row is sealed: ``store.audit.seal_row``).

What a session may do is never taken from sign-in: ``require`` re-reads the user and their role
from the store on every action, and a session whose user was deactivated, given another role or
another password since sign-in has ended (``SessionEnded``): it must sign in again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, insert, select, update

from store.audit import append_audit, seal_row
from store.schema import Role, User
from ui.panel.errors import NotAllowed, PanelError, SessionEnded
from ui.panel.transactions import audited

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MIN_PASSWORD_LENGTH = 8
_ACTOR_MAX = 64


@dataclass(frozen=True)
class SignedIn:
    """The user of a browser session, with what their role permits."""

    username: str
    display_name: str
    role: str
    can_control: bool
    can_approve: bool
    can_administer: bool
    session_tag: str = ""  # role, active and password hash at sign-in (see _session_tag)

    @property
    def label(self) -> str:
        return f"{self.display_name or self.username} ({self.role})"


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${salt.hex()}${key.hex()}"


def check_password(password: str, stored: str | None) -> bool:
    """True when ``password`` matches ``stored``; a missing or malformed hash never matches."""
    try:
        scheme, n, r, p, salt, key = (stored or "").split("$")
        if scheme != "scrypt":
            return False
        computed = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=len(key) // 2
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(computed.hex(), key)


def _check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PanelError(f"the password is too short; use at least {MIN_PASSWORD_LENGTH} characters")


def _check_role(connection: Connection, name: str) -> None:
    known = list(connection.execute(select(Role.name).order_by(Role.name)).scalars())
    if name not in known:
        raise PanelError(f"unknown role {name!r}; choose one of: {', '.join(known)}")


def add_user(
    engine: Engine, username: str, role: str, password: str, *, display_name: str = "", actor: str = "cli"
) -> None:
    """Create a user who can sign in; refuses a taken name, an unknown role, a short password."""
    username = username.strip()
    if not username or len(username) > _ACTOR_MAX:
        raise PanelError(f"a username has 1–{_ACTOR_MAX} characters")
    _check_new_password(password)
    password_hash = hash_password(password)

    def work(connection: Connection) -> None:
        _check_role(connection, role)
        if connection.execute(select(User.id).where(User.username == username)).first():
            raise PanelError(f"user {username!r} exists already; set a new password with `chiptwin user passwd`")
        user_id = connection.execute(
            insert(User).values(
                username=username,
                display_name=display_name,
                role_name=role,
                created_utc_s=time.time(),
                active=True,
                password_hash=password_hash,
            )
        ).inserted_primary_key[0]
        seal_row(connection, "user", user_id, actor, "user.add", {"username": username, "role": role})

    audited(engine, work)


def set_password(engine: Engine, username: str, password: str, *, actor: str = "cli") -> None:
    _check_new_password(password)
    password_hash = hash_password(password)

    _change_user(engine, username, actor, "user.password", password_hash=password_hash)


def set_role(engine: Engine, username: str, role: str, *, actor: str = "cli") -> None:
    """Give a user another role; their open panel sessions end at their next request."""
    _change_user(engine, username, actor, "user.role", check_role=role, role_name=role)


def set_active(engine: Engine, username: str, active: bool, *, actor: str = "cli") -> None:
    """Deactivate (or reactivate) a user; a deactivated user's open sessions end at their next request."""
    _change_user(engine, username, actor, "user.activate" if active else "user.deactivate", active=active)


def _change_user(
    engine: Engine, username: str, actor: str, action: str, check_role: str | None = None, **values
) -> None:
    def work(connection: Connection) -> None:
        if check_role is not None:
            _check_role(connection, check_role)
        user_id = connection.execute(select(User.id).where(User.username == username)).scalar()
        if user_id is None:
            raise PanelError(f"there is no user {username!r}; see `chiptwin user list`")
        connection.execute(update(User).where(User.id == user_id).values(**values))
        shown = {k: v for k, v in values.items() if k != "password_hash"}
        seal_row(connection, "user", user_id, actor, action, {"username": username, **shown})

    audited(engine, work)


def list_users(engine: Engine) -> list[dict]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(User.username, User.display_name, User.role_name, User.active, User.password_hash).order_by(
                User.username
            )
        ).all()
    return [
        {"username": u, "display_name": d, "role": r, "active": bool(a), "can_sign_in": bool(a and h)}
        for u, d, r, a, h in rows
    ]


def _session_tag(role: str, active: bool, password_hash: str | None) -> str:
    """Changes whenever the role, the active flag or the password changes: each ends open sessions."""
    return hashlib.sha256(json.dumps([role, bool(active), password_hash or ""]).encode()).hexdigest()[:32]


def _user_row(connection: Connection, username: str):
    return connection.execute(
        select(
            User.username,
            User.display_name,
            User.role_name,
            User.active,
            User.password_hash,
            Role.can_control,
            Role.can_approve,
            Role.can_administer,
        )
        .join(Role, Role.name == User.role_name)
        .where(User.username == username)
    ).first()


def _signed_in(connection: Connection, username: str) -> tuple[SignedIn | None, str | None]:
    row = _user_row(connection, username)
    if row is None or not row.active:
        return None, None
    who = SignedIn(
        row.username,
        row.display_name,
        row.role_name,
        bool(row.can_control),
        bool(row.can_approve),
        bool(row.can_administer),
        _session_tag(row.role_name, row.active, row.password_hash),
    )
    return who, row.password_hash


def sign_in(engine: Engine, username: str, password: str, *, where: str = "panel") -> SignedIn | None:
    """The user when the password matches an active user; None otherwise. Both are audited, as
    ``{where}.sign_in`` or ``{where}.sign_in_refused`` (``cli`` for a signer on the command line)."""
    username = username.strip()[:_ACTOR_MAX]
    with engine.connect() as connection:
        who, stored = _signed_in(connection, username)
    ok = who is not None and check_password(password, stored)
    if not ok:
        check_password(password, _DUMMY_HASH)  # same work for unknown users: no timing hint

    def work(connection: Connection) -> None:
        action = f"{where}.sign_in" if ok else f"{where}.sign_in_refused"
        append_audit(connection, username or "(blank)", action, entity="user", entity_id=username)

    audited(engine, work)
    return who if ok else None


def sign_out(engine: Engine, user: SignedIn) -> None:
    audited(engine, lambda c: append_audit(c, user.username, "panel.sign_out", entity="user", entity_id=user.username))


def confirm_signature(engine: Engine, user: SignedIn, password: str) -> None:
    """A typed signature is the signer's password again; raises NotAllowed when it does not match."""
    with engine.connect() as connection:
        who, stored = _signed_in(connection, user.username)
    if who is None or not check_password(password, stored):
        raise NotAllowed("the signature does not match: re-enter your own password to sign")


def current(engine: Engine, user: SignedIn) -> SignedIn:
    """The session's user as the store has them now; SessionEnded when the session was revoked since."""
    with engine.connect() as connection:
        row = _user_row(connection, user.username)
    reason = _revoked(user, row)
    if reason:
        raise SessionEnded(f"your session ended: {reason}; sign in again")
    return SignedIn(
        row.username,
        row.display_name,
        row.role_name,
        bool(row.can_control),
        bool(row.can_approve),
        bool(row.can_administer),
        user.session_tag,
    )


def _revoked(user: SignedIn, row) -> str:
    if row is None:
        return "your account no longer exists"
    if not row.active:
        return "your account was deactivated"
    if row.role_name != user.role:
        return f"your role changed from {user.role} to {row.role_name}"
    if _session_tag(row.role_name, row.active, row.password_hash) != user.session_tag:
        return "your password was changed"
    return ""


def end_session(engine: Engine, user: SignedIn, reason: str) -> None:
    audited(
        engine,
        lambda c: append_audit(
            c, user.username, "panel.session_ended", entity="user", entity_id=user.username, payload={"reason": reason}
        ),
    )


def require(engine: Engine, user: SignedIn | None, permission: str) -> SignedIn:
    """The user as the store has them now, if their role has ``permission`` (control, approve,
    administer). Read on every action: a role taken away after sign-in no longer counts."""
    if user is None:
        raise NotAllowed("sign in first")
    who = current(engine, user)
    if not getattr(who, f"can_{permission}"):
        raise NotAllowed(f"your role ({who.role}) may not {permission}; ask a user whose role may")
    return who


_DUMMY_HASH = hash_password("not a password of anyone")
