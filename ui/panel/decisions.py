"""Approving or rejecting the twin's proposals, with a reason and a typed signature.

One transaction writes all of it: the Approval row, the proposal's new status, the
PanelRequest the runner picks up, and the audit entry that seals the Approval row. The stored signature is never the
password: it is a SHA-256 over what was signed (proposal, its design, decision, reason,
signer, time), checked against the signer's password before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, insert

from store.audit import seal_row
from store.repositories import proposals
from store.schema import PanelRequest
from store.states import ProposalStatus
from ui.panel import validators
from ui.panel.auth import SignedIn, confirm_signature, require
from ui.panel.errors import PanelError
from ui.panel.transactions import audited

DECISIONS = {"approve": ProposalStatus.APPROVED, "reject": ProposalStatus.REJECTED}


@dataclass(frozen=True)
class Decision:
    proposal_id: int
    decision: ProposalStatus  # approved | rejected
    approval_id: int
    request_id: int
    signature: str


def signature_of(proposal_id: int, design_json: str, decision: str, reason: str, signer: str, t_utc_s: float) -> str:
    content = json.dumps([proposal_id, design_json, decision, reason, signer, repr(float(t_utc_s))])
    return f"sha256:{hashlib.sha256(content.encode()).hexdigest()}"


def decide(
    engine: Engine, user: SignedIn | None, proposal_id: int, action: str, reason: str, password: str
) -> Decision:
    """``action`` is approve or reject; refuses roles that cannot approve, a blank reason, a bad signature."""
    who = require(engine, user, "approve")
    if action not in DECISIONS:
        raise PanelError(f"unknown decision {action!r}; approve or reject")
    reason = validators.free_text("reason", reason)
    if not reason:
        raise PanelError("give a reason: it is kept with the decision")
    confirm_signature(engine, who, password)
    decision = DECISIONS[action]

    def work(connection: Connection) -> Decision:
        now = time.time()
        row = proposals.get(connection, proposal_id)
        if row is None:
            raise PanelError(f"there is no proposal {proposal_id}")
        if not proposals.set_status(connection, proposal_id, decision, only_if=ProposalStatus.PENDING):
            raise PanelError(f"proposal {proposal_id} is {row.status} already; nothing was changed")
        signature = signature_of(proposal_id, row.design_json, decision, reason, who.username, now)
        approval_id = proposals.add_approval(
            connection, proposal_id, who.username, decision, reason, now, signature=signature
        )
        payload = {"proposal_id": proposal_id, "approval_id": approval_id, "reason": reason}
        request_id = connection.execute(
            insert(PanelRequest).values(
                run_id=row.run_id,
                kind=action,
                payload_json=json.dumps(payload),
                requested_by=who.username,
                requested_utc_s=now,
                state="pending",
                response="",
            )
        ).inserted_primary_key[0]
        seal_row(
            connection,
            "approval",
            approval_id,
            who.username,
            f"proposal.{action}",
            {**payload, "request_id": request_id, "signature": signature},
            t_utc_s=now,
        )
        return Decision(proposal_id, decision, approval_id, request_id, signature)

    return audited(engine, work)


def pretty_json(text: str) -> object:
    """A JSON column as an object for st.json (the raw text when it is not JSON)."""
    try:
        return json.loads(text or "{}")
    except json.JSONDecodeError:
        return text
