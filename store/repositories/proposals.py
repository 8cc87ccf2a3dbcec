"""Proposals of the closed loop and their decisions: the only code that writes their status."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlmodel import col

from store.repositories.reading import new_id, read
from store.schema import Approval, Proposal
from store.states import ProposalStatus


@dataclass(frozen=True)
class NewProposal:
    run_id: int
    fit_id: int | None
    step_index: int
    design: dict[str, Any]  # chip → the chosen experiment (JSON-ready)
    predicted: dict[str, Any]
    expected_information_gain: float
    created_utc_s: float


def add(connection: Connection, proposal: NewProposal) -> int:
    return new_id(
        connection.execute(
            insert(Proposal).values(
                run_id=proposal.run_id,
                fit_id=proposal.fit_id,
                step_index=proposal.step_index,
                design_json=json.dumps({"step": proposal.step_index, "chips": proposal.design}, default=float),
                predicted_json=json.dumps(proposal.predicted, default=float),
                expected_information_gain=proposal.expected_information_gain,
                status=ProposalStatus.PENDING,
                created_utc_s=proposal.created_utc_s,
            )
        )
    )


def for_step(source: Engine | Connection, run_id: int, step_index: int) -> Proposal | None:
    return _one(
        read(
            source,
            select(Proposal)
            .where(col(Proposal.run_id) == run_id, col(Proposal.step_index) == step_index)
            .order_by(col(Proposal.id).desc())
            .limit(1),
        ).first()
    )


def latest(source: Engine | Connection, run_id: int) -> Proposal | None:
    return _one(
        read(
            source, select(Proposal).where(col(Proposal.run_id) == run_id).order_by(col(Proposal.id).desc()).limit(1)
        ).first()
    )


def get(source: Engine | Connection, proposal_id: int) -> Proposal | None:
    return _one(read(source, select(Proposal).where(col(Proposal.id) == proposal_id)).first())


def pending(source: Engine | Connection) -> list[Proposal]:
    """Proposals waiting for a decision, oldest first."""
    query = select(Proposal).where(col(Proposal.status) == ProposalStatus.PENDING).order_by(col(Proposal.created_utc_s))
    return [Proposal(**r._mapping) for r in read(source, query).all()]


def set_status(
    connection: Connection, proposal_id: int, status: ProposalStatus, only_if: ProposalStatus | None = None
) -> bool:
    """Write the new status; with ``only_if``, only when the proposal is still in that state (the
    first decision wins when a person and the runner's timeout race). True when it was written."""
    query = update(Proposal).where(col(Proposal.id) == proposal_id)
    if only_if is not None:
        query = query.where(col(Proposal.status) == only_if)
    return connection.execute(query.values(status=ProposalStatus(status))).rowcount == 1


def add_approval(
    connection: Connection,
    proposal_id: int,
    decided_by: str,
    decision: ProposalStatus,
    reason: str,
    decided_utc_s: float,
    signature: str = "",
) -> int:
    return new_id(
        connection.execute(
            insert(Approval).values(
                proposal_id=proposal_id,
                decided_by=decided_by,
                decision=ProposalStatus(decision),
                reason=reason,
                signature=signature,
                decided_utc_s=decided_utc_s,
            )
        )
    )


def _one(row: object) -> Proposal | None:
    return None if row is None else Proposal(**row._mapping)  # type: ignore[attr-defined]


def of_run(source: Engine | Connection, run_id: int) -> list[Proposal]:
    query = select(Proposal).where(col(Proposal.run_id) == run_id).order_by(col(Proposal.id))
    return [Proposal(**r._mapping) for r in read(source, query).all()]


def approvals(source: Engine | Connection, proposal_id: int) -> list[Approval]:
    """Who decided the proposal, oldest decision first."""
    query = select(Approval).where(col(Approval.proposal_id) == proposal_id).order_by(col(Approval.decided_utc_s))
    return [Approval(**r._mapping) for r in read(source, query).all()]


@dataclass(frozen=True)
class ProposalHistory:
    """A proposal with every decision on it (a policy's, a person's signed one), oldest decision first."""

    proposal: Proposal
    approvals: tuple[Approval, ...]


def history(source: Engine | Connection, run_id: int | None = None) -> list[ProposalHistory]:
    """Every proposal (of one run, or of all runs), newest first, each with its decisions."""
    query = select(Proposal).order_by(col(Proposal.id).desc())
    if run_id is not None:
        query = query.where(col(Proposal.run_id) == run_id)
    found = [Proposal(**r._mapping) for r in read(source, query).all()]
    ids = [p.id for p in found if p.id is not None]
    decided: dict[int, list[Approval]] = {}
    if ids:
        rows = read(
            source,
            select(Approval)
            .where(col(Approval.proposal_id).in_(ids))
            .order_by(col(Approval.decided_utc_s), col(Approval.id)),
        ).all()
        for r in rows:
            approval = Approval(**r._mapping)
            decided.setdefault(approval.proposal_id, []).append(approval)
    return [ProposalHistory(p, tuple(decided.get(p.id or 0, ()))) for p in found]
