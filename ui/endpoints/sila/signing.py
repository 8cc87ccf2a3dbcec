"""User name and password on each call that changes something: checked against ChipTwin's users.

SiLA 2 calls carry no session, so a call that changes something names its user and password, signed in
(and audited as ``sila.sign_in`` / ``sila.sign_in_refused``) exactly as the panel signs a person in;
what the user may do is then decided by the panel's own ``require``.
"""

from __future__ import annotations

from sqlalchemy import Engine

from ui.panel.auth import SignedIn, require, sign_in
from ui.panel.errors import NotAllowed


def signed(engine: Engine, user_name: str, password: str, permission: str) -> SignedIn:
    """The user, if the password matches and their role has ``permission``; NotAllowed otherwise."""
    who = sign_in(engine, user_name, password, where="sila")
    if who is None:
        raise NotAllowed("the user name or password is wrong; fix: give an active ChipTwin user and their password")
    return require(engine, who, permission)


def queue_signer(engine: Engine, user_name: str, password: str) -> SignedIn:
    """A user who may put runs on a rig's queue or take them off: a scientist or admin, as on the panel's Runs page."""
    who = signed(engine, user_name, password, "control")
    if not who.can_approve:
        raise NotAllowed(f"your role ({who.role}) may not queue or cancel runs; ask a scientist or an admin")
    return who
