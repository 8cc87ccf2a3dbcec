"""The states a run and a proposal go through, named once (``StrEnum``: stored as their text)."""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    PARKED = "parked"  # waiting for a person (an approval, a dose that could not be confirmed)
    DONE = "done"
    ABORTED = "aborted"
    FAILED = "failed"


FINAL_RUN_STATES = frozenset({RunState.DONE, RunState.ABORTED, RunState.FAILED})  # a run never leaves these


class ProposalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    EXECUTED = "executed"


DECISIONS = frozenset({ProposalStatus.APPROVED, ProposalStatus.REJECTED})  # what a person or a policy may decide


class QueueState(StrEnum):
    QUEUED = "queued"  # waiting for its rig and its time
    STARTING = "starting"  # a supervisor has claimed it and is starting its runner
    STARTED = "started"  # its run exists (``run_id``); the run's own state tells the rest
    CANCELLED = "cancelled"  # a person took it off the queue before it started
    FAILED = "failed"  # it could not be started (the note says why)


OPEN_QUEUE_STATES = frozenset({QueueState.QUEUED, QueueState.STARTING})  # entries a supervisor still acts on
