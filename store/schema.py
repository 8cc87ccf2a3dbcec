"""The lab record: one sqlmodel table per thing DESIGN.md names.

Conventions:
- Every timestamp is seconds since the Unix epoch, UTC, named ``*_utc_s``; it comes from
  the shared clock (real or accelerated), so a float is the honest type.
- Structured payloads (protocol checkpoints, fit estimates, designs) are JSON text in
  ``*_json`` columns: the schema stays stable while the payloads evolve with their owners.
- Readings are the hot path: a clustered primary key (channel, time) keeps one channel's
  window contiguous on disk and makes a repeated ingest of the same reading a no-op.
"""

from __future__ import annotations

from typing import Optional

from sqlalchemy import BigInteger, Column, Float, Index, Integer, SmallInteger, UniqueConstraint
from sqlmodel import Field, SQLModel


class Role(SQLModel, table=True):
    """What a user may do: technicians control runs, scientists also approve proposals."""

    name: str = Field(primary_key=True, max_length=32)
    can_control: bool = True
    can_approve: bool = False
    can_administer: bool = False
    description: str = ""


class User(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    username: str = Field(index=True, unique=True, max_length=64)
    display_name: str = ""
    role_name: str = Field(foreign_key="role.name")
    created_utc_s: float
    active: bool = True
    password_hash: Optional[str] = Field(default=None, max_length=256)  # scrypt, see ui.panel.auth


class Rig(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=128)
    description: str = ""
    config_toml: str = ""
    created_utc_s: float


class Instrument(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("rig_id", "name"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    rig_id: int = Field(foreign_key="rig.id", index=True)
    name: str = Field(max_length=128)
    driver: str = Field(max_length=64)
    address: str = ""
    serial_number: str = ""
    connection_state: str = Field(default="unknown", max_length=16)  # ok/degraded/reconnecting/lost


class Chip(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("rig_id", "name"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    rig_id: int = Field(foreign_key="rig.id", index=True)
    name: str = Field(max_length=128)
    organ: str = Field(max_length=32)
    cell_lot: str = ""
    n_cells_million: float = 0.0
    v_medium_ml: float = 0.0
    v_cell_ml: float = 0.0


class Channel(SQLModel, table=True):
    """One measured quantity: instrument × quantity × unit, usually of one chip."""

    __table_args__ = (UniqueConstraint("rig_id", "name"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    rig_id: int = Field(foreign_key="rig.id", index=True)
    name: str = Field(max_length=128)
    instrument_id: Optional[int] = Field(default=None, foreign_key="instrument.id")
    chip_id: Optional[int] = Field(default=None, foreign_key="chip.id")
    quantity: str = Field(max_length=64)
    unit: str = Field(max_length=32)
    poll_period_s: float = 1.0


class Reading(SQLModel, table=True):
    """Append-only; quality is a bit set (see store.ingest.Quality)."""

    __table_args__ = {"sqlite_with_rowid": False}

    channel_id: int = Field(foreign_key="channel.id", primary_key=True)
    t_utc_s: float = Field(sa_column=Column(Float(precision=53), primary_key=True))
    value: float = Field(sa_column=Column(Float(precision=53), nullable=False))
    quality: int = Field(default=0, sa_column=Column(SmallInteger, nullable=False, default=0))


class Experiment(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    rig_id: Optional[int] = Field(default=None, foreign_key="rig.id")
    created_by: str = ""
    created_utc_s: float
    description: str = ""


class ProtocolRun(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    experiment_id: Optional[int] = Field(default=None, foreign_key="experiment.id")
    rig_id: int = Field(foreign_key="rig.id", index=True)
    protocol_text: str
    protocol_sha256: str = Field(max_length=64)
    state: str = Field(default="created", max_length=32)  # created/running/paused/parked/done/aborted/failed
    checkpoint_json: str = "{}"
    clock_rate: float = 1.0
    started_utc_s: Optional[float] = None  # on the run's clock (simulated for an accelerated rig)
    ended_utc_s: Optional[float] = None
    started_wall_utc_s: Optional[float] = None  # on the wall clock, always
    ended_wall_utc_s: Optional[float] = None


class Step(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("run_id", "index"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="protocolrun.id", index=True)
    index: int
    kind: str = Field(max_length=32)
    state: str = Field(default="pending", max_length=16)
    detail_json: str = "{}"
    started_utc_s: Optional[float] = None
    ended_utc_s: Optional[float] = None


class Command(SQLModel, table=True):
    """Write-ahead intent log: written before a byte goes to a device."""

    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: Optional[int] = Field(default=None, foreign_key="protocolrun.id", index=True)
    idempotency_key: str = Field(unique=True, max_length=128)
    instrument_id: Optional[int] = Field(default=None, foreign_key="instrument.id")
    command: str = Field(max_length=64)
    args_json: str = "{}"
    state: str = Field(default="pending", max_length=16)  # pending/sent/confirmed/failed
    requested_amount: Optional[float] = None
    device_reported_amount: Optional[float] = None
    amount_unit: str = ""
    error: str = ""
    created_utc_s: float
    updated_utc_s: float


class DoseEvent(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: Optional[int] = Field(default=None, foreign_key="protocolrun.id", index=True)
    chip_id: int = Field(foreign_key="chip.id", index=True)
    command_id: Optional[int] = Field(default=None, foreign_key="command.id")
    drug: str = Field(max_length=64)
    t_utc_s: float
    amount_nmol: float
    volume_ml: float


class Sample(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    label: str = Field(unique=True, max_length=128)
    run_id: Optional[int] = Field(default=None, foreign_key="protocolrun.id", index=True)
    chip_id: int = Field(foreign_key="chip.id", index=True)
    t_utc_s: float
    volume_ml: float
    assay: str = Field(default="", max_length=64)


class AssayResult(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("sample_id", "analyte", "source_sha256"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    sample_id: int = Field(foreign_key="sample.id", index=True)
    analyte: str = Field(max_length=64)
    value: Optional[float] = None
    unit: str = Field(max_length=32)
    below_lloq: bool = False
    lloq: Optional[float] = None
    source_file: str = ""
    source_sha256: str = Field(default="", max_length=64)
    imported_utc_s: float


class Fit(SQLModel, table=True):
    """A fit is a record (MODELS.md §4); estimates and the rest are JSON documents."""

    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: Optional[int] = Field(default=None, foreign_key="protocolrun.id", index=True)
    experiment_id: Optional[int] = Field(default=None, foreign_key="experiment.id")
    step_index: Optional[int] = Field(default=None, index=True)  # the calibrate step that made it
    model: str = Field(max_length=64)
    model_version: str = Field(max_length=32)
    method: str = Field(max_length=32)
    data_selection_json: str = "{}"
    record_json: str = "{}"
    minus2ll: Optional[float] = None
    aic: Optional[float] = None
    bic: Optional[float] = None
    converged: bool = False
    warnings_json: str = "[]"
    wall_time_s: float = 0.0
    created_utc_s: float


class Proposal(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: Optional[int] = Field(default=None, foreign_key="protocolrun.id", index=True)
    fit_id: Optional[int] = Field(default=None, foreign_key="fit.id")
    step_index: Optional[int] = Field(default=None, index=True)  # the propose step that made it
    design_json: str
    predicted_json: str = "{}"
    expected_information_gain: Optional[float] = None
    status: str = Field(default="pending", max_length=16)  # pending/approved/rejected/executed/expired
    created_utc_s: float


class Approval(SQLModel, table=True):
    """Who decided a proposal, when, and why (auto-approvals name the policy as actor)."""

    id: Optional[int] = Field(default=None, primary_key=True)
    proposal_id: int = Field(foreign_key="proposal.id", index=True)
    decided_by: str = Field(max_length=64)
    decision: str = Field(max_length=16)  # approved/rejected
    reason: str = ""
    signature: str = ""
    decided_utc_s: float


class Alarm(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    rig_id: Optional[int] = Field(default=None, foreign_key="rig.id", index=True)
    run_id: Optional[int] = Field(default=None, foreign_key="protocolrun.id")
    t_utc_s: float
    severity: str = Field(max_length=16)  # info/warning/critical
    source: str = Field(max_length=128)
    message: str
    acknowledged_by: Optional[str] = None
    acknowledged_utc_s: Optional[float] = None
    ack_comment: str = ""


class PanelRequest(SQLModel, table=True):
    """A request from the panel (start, pause, resume, abort, approve, reject) to a runner."""

    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: Optional[int] = Field(default=None, foreign_key="protocolrun.id", index=True)
    kind: str = Field(max_length=16)
    payload_json: str = "{}"
    requested_by: str = Field(max_length=64)
    requested_utc_s: float
    state: str = Field(default="pending", max_length=16)  # pending/acknowledged/done/refused
    acknowledged_utc_s: Optional[float] = None
    response: str = ""


class AuditEntry(SQLModel, table=True):
    """Append-only, hash-chained: ``entry_hash`` covers the content and ``prev_hash``."""

    # BIGINT on PostgreSQL; INTEGER on SQLite, where only that spelling autoincrements.
    seq: Optional[int] = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    )
    t_utc_s: float
    actor: str = Field(max_length=64)
    action: str = Field(max_length=64)
    entity: str = Field(default="", max_length=64)
    entity_id: str = Field(default="", max_length=64)
    payload_json: str = "{}"
    prev_hash: str = Field(max_length=64)
    entry_hash: str = Field(max_length=64)


Index("ix_alarm_open", Alarm.rig_id, Alarm.acknowledged_utc_s)
Index("ix_request_pending", PanelRequest.run_id, PanelRequest.state)


class RigLease(SQLModel, table=True):
    """Who drives a rig now: one row per held rig, so a second runner is refused (store.lease).

    Times are wall-clock (``time.time()``), never the accelerated run clock: expiry must
    mean that the holder has been silent for real seconds.
    """

    rig_name: str = Field(primary_key=True, max_length=128)
    token: str = Field(max_length=32)  # random per holder: renew/release/take-over compare it
    holder_host: str = Field(max_length=255)
    holder_pid: int
    holder_command: str = Field(default="", max_length=32)  # run / resume
    run_id: Optional[int] = Field(default=None, index=True)
    acquired_utc_s: float
    heartbeat_utc_s: float
    expires_utc_s: float


class QueuedRun(SQLModel, table=True):
    """A protocol waiting for its rig: a lab supervisor starts it when the rig is free and its time has come.

    Times are wall-clock: a queue is read and written by people and schedulers, not by a run's
    accelerated clock. ``rig_name`` is a name, not a key: a rig is queued for before any run on it
    has written its ``rig`` row.
    """

    id: Optional[int] = Field(default=None, primary_key=True)
    rig_name: str = Field(index=True, max_length=128)
    protocol_name: str = Field(default="", max_length=255)  # the file it came from, for people to read
    protocol_text: str
    protocol_sha256: str = Field(max_length=64)
    not_before_utc_s: Optional[float] = None
    state: str = Field(default="queued", max_length=16, index=True)  # store.states.QueueState
    run_id: Optional[int] = Field(default=None, foreign_key="protocolrun.id")
    queued_by: str = Field(max_length=64)
    queued_utc_s: float
    ended_by: str = Field(default="", max_length=64)  # who cancelled it, or the supervisor that started it
    ended_utc_s: Optional[float] = None
    note: str = ""  # why it was cancelled or could not start


class LabSupervisor(SQLModel, table=True):
    """A lab supervisor (`chiptwin lab serve`): one per lab machine, its health as a heartbeat.

    Times are wall-clock. ``health_json`` is its own report (children, restarts) for `chiptwin lab status`.
    """

    name: str = Field(primary_key=True, max_length=128)
    host: str = Field(max_length=255)
    pid: int
    started_utc_s: float
    heartbeat_utc_s: float
    expires_utc_s: float
    health_json: str = "{}"


class RigOwner(SQLModel, table=True):
    """Which supervisor owns which rig: a rig has one owner, so two supervisors never both start its runs."""

    rig_name: str = Field(primary_key=True, max_length=128)
    supervisor_name: str = Field(foreign_key="labsupervisor.name", index=True, max_length=128)
    since_utc_s: float


class PollSession(SQLModel, table=True):
    """One runner process's acquisition poller on a run: from its start to its clean stop (None: it died,
    or is still polling). Times are on the run's clock. The poll ledger (store.repositories.polls)
    counts each channel's slots against the sessions' schedules."""

    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="protocolrun.id", index=True)
    pid: int
    started_utc_s: float
    stopped_utc_s: Optional[float] = None


class PollSchedule(SQLModel, table=True):
    """A channel's slots in one session: slot k is due at ``first_due_utc_s + k·period_s`` (run clock)."""

    session_id: int = Field(foreign_key="pollsession.id", primary_key=True)
    channel_id: int = Field(foreign_key="channel.id", primary_key=True)
    first_due_utc_s: float = Field(sa_column=Column(Float(precision=53), nullable=False))
    period_s: float


class PollGap(SQLModel, table=True):
    """Slots of a session the poller served without a reading, and why: ``late`` (the whole period passed
    before the poller could poll: skipped), ``no_value`` (polled, but the device failed before it ever
    gave a value). Slots ``first_slot`` … ``first_slot + slots − 1`` of the channel's schedule."""

    id: Optional[int] = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="pollsession.id", index=True)
    channel_id: int = Field(foreign_key="channel.id")
    first_slot: int
    slots: int
    reason: str = Field(max_length=16)
