"""What a study report says about one run, read from the store into typed records (no rendering here).

Only reads: SQLModel selects on the run's rows, the model catalogue for parameter units, and
``store.audit.verify_audit`` for the chain's status.
"""

from __future__ import annotations

import hashlib
import json
import time
import tomllib
from dataclasses import dataclass, field

from sqlalchemy import Engine, and_, or_, select

from calibration.io.record import chip_documents
from store.audit import verify_audit
from store.repositories import fits as fit_records
from store.repositories import proposals as proposal_records
from store.repositories import runs as run_records
from store.schema import Alarm, AssayResult, Chip, Command, DoseEvent, Rig, Sample
from twin.errors import TwinError
from ui.report.errors import ReportError


@dataclass(frozen=True)
class RunInfo:
    run_id: int
    protocol_name: str
    protocol_sha256: str
    protocol_hash_matches: bool  # the stored hash is the hash of the stored text
    state: str
    started_utc_s: float | None
    ended_utc_s: float | None
    clock_rate: float
    rig_name: str
    rig_description: str
    started_wall_utc_s: float | None = None  # on the wall clock (migration 0006)
    ended_wall_utc_s: float | None = None


@dataclass(frozen=True)
class ChipInfo:
    name: str
    organ: str
    cell_lot: str
    n_cells_million: float
    v_medium_ml: float
    v_cell_ml: float


@dataclass(frozen=True)
class DoseInfo:
    chip: str
    drug: str
    t_utc_s: float
    amount_nmol: float
    volume_ml: float
    intent_key: str  # the intent-log entry the dose was confirmed from ("" for a manual record)
    intent_state: str


@dataclass(frozen=True)
class OpenIntent:
    """An intent-log entry that did not end confirmed: a dose that failed, or one a person must check."""

    key: str
    command: str
    state: str
    requested_amount: float | None
    amount_unit: str
    error: str
    t_utc_s: float


@dataclass(frozen=True)
class SampleInfo:
    label: str
    chip: str
    t_utc_s: float
    volume_ml: float


@dataclass(frozen=True)
class AssayInfo:
    sample: str
    chip: str
    analyte: str
    value: float | None
    unit: str
    below_lloq: bool
    lloq: float | None


@dataclass(frozen=True)
class AlarmInfo:
    t_utc_s: float
    severity: str
    source: str
    message: str
    acknowledged_by: str | None
    ack_comment: str


@dataclass(frozen=True)
class Estimate:
    name: str
    estimate: float | None
    low95: float | None
    high95: float | None
    unit: str
    rse_percent: float | None


@dataclass(frozen=True)
class ChipFit:
    fit_id: int
    chip: str  # "" for a fit of one data set
    model: str
    method: str
    converged: bool
    minus2ll: float | None
    n_observations: int | None
    created_utc_s: float
    estimates: tuple[Estimate, ...]
    warnings: tuple[str, ...]
    record: dict  # the FitRecord document, for the plot (calibration.uncertainty.review rebuilds the fit from it)


@dataclass(frozen=True)
class Decision:
    decided_by: str
    decision: str
    reason: str
    signed: bool  # an e-signature (a person); a policy decides unsigned
    t_utc_s: float


@dataclass(frozen=True)
class ProposalInfo:
    proposal_id: int
    status: str
    created_utc_s: float
    expected_information_gain: float | None
    design: str  # one line per chip, as designed
    decisions: tuple[Decision, ...]


@dataclass(frozen=True)
class AuditStatus:
    intact: bool
    entries_checked: int
    last_hash: str
    anchored_seq: int | None
    rows_checked: int
    problems: tuple[str, ...]


@dataclass(frozen=True)
class RunReport:
    run: RunInfo
    chips: tuple[ChipInfo, ...]
    doses: tuple[DoseInfo, ...]
    intent_states: dict[str, int]  # every command of the run's intent log, by state
    open_intents: tuple[OpenIntent, ...]
    samples: tuple[SampleInfo, ...]
    assays: tuple[AssayInfo, ...]
    alarms: tuple[AlarmInfo, ...]
    fits: tuple[ChipFit, ...]
    proposals: tuple[ProposalInfo, ...]
    audit: AuditStatus
    made_utc_s: float = field(default_factory=time.time)


def gather(engine: Engine, run_id: int) -> RunReport:
    """Everything the report shows about run ``run_id``; ReportError when the store has no such run."""
    with engine.connect() as c:
        try:
            run = run_records.get(c, run_id)
        except run_records.UnknownRun:
            known = run_records.latest_ids(c, 5)
            hint = f"latest runs: {', '.join(map(str, known))}" if known else "the store has no run yet"
            raise ReportError(f"no run {run_id} in this store ({hint}); check the run number and --db") from None
        rig = c.execute(select(Rig).where(Rig.id == run.rig_id)).one()
        chips = {r.id: r for r in c.execute(select(Chip).where(Chip.rig_id == run.rig_id).order_by(Chip.name)).all()}
        name_of = {i: r.name for i, r in chips.items()}
        info = _run_info(run, rig)
        doses = _doses(c, run_id, name_of)
        intents = _intent_states(c, run_id)
        open_intents = _open_intents(c, run_id)
        samples, assays = _samples(c, run_id, name_of)
        alarms = _alarms(c, run)
        fits = _fits(c, run_id)
        proposals = _proposals(c, run_id)
    chip_infos = tuple(
        ChipInfo(r.name, r.organ, r.cell_lot, r.n_cells_million, r.v_medium_ml, r.v_cell_ml) for r in chips.values()
    )
    return RunReport(
        info, chip_infos, doses, intents, open_intents, samples, assays, alarms, fits, proposals, _audit(engine)
    )


def _run_info(run, rig) -> RunInfo:
    try:
        name = str(tomllib.loads(run.protocol_text).get("protocol", {}).get("name", "")) or "(unnamed)"
    except tomllib.TOMLDecodeError:
        name = "(protocol text is not TOML)"
    matches = hashlib.sha256(run.protocol_text.encode()).hexdigest() == run.protocol_sha256
    return RunInfo(
        run.id,
        name,
        run.protocol_sha256,
        matches,
        run.state,
        run.started_utc_s,
        run.ended_utc_s,
        run.clock_rate,
        rig.name,
        rig.description,
        run.started_wall_utc_s,
        run.ended_wall_utc_s,
    )


def _doses(c, run_id: int, name_of: dict[int, str]) -> tuple[DoseInfo, ...]:
    rows = c.execute(
        select(
            DoseEvent.chip_id,
            DoseEvent.drug,
            DoseEvent.t_utc_s,
            DoseEvent.amount_nmol,
            DoseEvent.volume_ml,
            Command.idempotency_key,
            Command.state,
        )
        .join(Command, Command.id == DoseEvent.command_id, isouter=True)
        .where(DoseEvent.run_id == run_id)
        .order_by(DoseEvent.t_utc_s, DoseEvent.id)
    ).all()
    return tuple(
        DoseInfo(
            name_of.get(r.chip_id, f"chip #{r.chip_id}"),
            r.drug,
            r.t_utc_s,
            r.amount_nmol,
            r.volume_ml,
            r.idempotency_key or "",
            r.state or "recorded without an intent",
        )
        for r in rows
    )


def _intent_states(c, run_id: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for state in c.execute(select(Command.state).where(Command.run_id == run_id)).scalars():
        counts[state] = counts.get(state, 0) + 1
    return counts


def _open_intents(c, run_id: int) -> tuple[OpenIntent, ...]:
    rows = c.execute(
        select(Command)
        .where(Command.run_id == run_id, Command.state != "confirmed")
        .order_by(Command.created_utc_s, Command.id)
    ).all()
    return tuple(
        OpenIntent(r.idempotency_key, r.command, r.state, r.requested_amount, r.amount_unit, r.error, r.created_utc_s)
        for r in rows
    )


def _samples(c, run_id: int, name_of: dict[int, str]) -> tuple[tuple[SampleInfo, ...], tuple[AssayInfo, ...]]:
    samples = c.execute(select(Sample).where(Sample.run_id == run_id).order_by(Sample.t_utc_s, Sample.id)).all()
    label = {s.id: s.label for s in samples}
    chip = {s.id: name_of.get(s.chip_id, f"chip #{s.chip_id}") for s in samples}
    assays = (
        c.execute(
            select(AssayResult)
            .where(AssayResult.sample_id.in_(list(label)))
            .order_by(AssayResult.sample_id, AssayResult.analyte)
        ).all()
        if label
        else []
    )
    return (
        tuple(SampleInfo(s.label, chip[s.id], s.t_utc_s, s.volume_ml) for s in samples),
        tuple(
            AssayInfo(label[a.sample_id], chip[a.sample_id], a.analyte, a.value, a.unit, a.below_lloq, a.lloq)
            for a in assays
        ),
    )


def _alarms(c, run) -> tuple[AlarmInfo, ...]:
    """The run's alarms, and its rig's alarms stored without a run while the run went on."""
    during = Alarm.run_id.is_(None) & (Alarm.rig_id == run.rig_id)
    if run.started_utc_s is not None:
        during &= Alarm.t_utc_s >= run.started_utc_s
    if run.ended_utc_s is not None:
        during &= Alarm.t_utc_s <= run.ended_utc_s
    rows = c.execute(select(Alarm).where(or_(Alarm.run_id == run.id, and_(during))).order_by(Alarm.t_utc_s)).all()
    return tuple(AlarmInfo(a.t_utc_s, a.severity, a.source, a.message, a.acknowledged_by, a.ack_comment) for a in rows)


def _fits(c, run_id: int) -> tuple[ChipFit, ...]:
    result = []
    for row in fit_records.of_run(c, run_id):
        try:
            document = json.loads(row.record_json or "{}")
        except json.JSONDecodeError:
            document = {}
        for chip, record in chip_documents(document).items():
            result.append(
                ChipFit(
                    row.id,
                    chip,
                    row.model,
                    row.method,
                    bool(record.get("converged", row.converged)),
                    record.get("minus2ll", row.minus2ll),
                    record.get("n_observations"),
                    row.created_utc_s,
                    _estimates(row.model, record),
                    tuple(record.get("warnings") or ()),
                    record,
                )
            )
    return tuple(result)


def _estimates(model: str, record: dict) -> tuple[Estimate, ...]:
    units = _parameter_units(model)
    result = []
    for name, theta in (record.get("theta") or {}).items():
        low, high = theta.get("ci95") or (None, None)
        result.append(Estimate(name, theta.get("estimate"), low, high, units.get(name, "?"), theta.get("rse_percent")))
    return tuple(result)


def _parameter_units(model: str) -> dict[str, str]:
    from twin.catalogue import get_model  # the catalogue loads every model: only when a fit is shown

    try:
        return {p.name: p.unit for p in get_model(model).parameters}
    except TwinError:
        return {}


def _proposals(c, run_id: int) -> tuple[ProposalInfo, ...]:
    result = []
    for p in proposal_records.of_run(c, run_id):
        decisions = tuple(
            Decision(a.decided_by, a.decision, a.reason, bool(a.signature), a.decided_utc_s)
            for a in proposal_records.approvals(c, p.id)
        )
        result.append(
            ProposalInfo(
                p.id, p.status, p.created_utc_s, p.expected_information_gain, _design_text(p.design_json), decisions
            )
        )
    return tuple(result)


def _design_text(design_json: str) -> str:
    """The design as lines a person reads: "chip1: 120 nmol at 3 h" where the design says so."""
    try:
        design = json.loads(design_json or "{}")
    except json.JSONDecodeError:
        return design_json
    chips = design.get("chips") if isinstance(design, dict) else None
    if not isinstance(chips, dict):
        return json.dumps(design, sort_keys=True)
    lines = []
    for chip, entry in chips.items():
        if isinstance(entry, dict):
            parts = [f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in entry.items()]
            lines.append(f"{chip}: {', '.join(parts)}")
        else:
            lines.append(f"{chip}: {entry}")
    return "\n".join(lines)


def _audit(engine: Engine) -> AuditStatus:
    report = verify_audit(engine)
    problems = [f"entry {report.first_broken.seq}: {report.first_broken.reason}"] if report.first_broken else []
    problems += [f"{p.kind}: {p.message}" for p in report.problems]
    return AuditStatus(
        report.intact,
        report.entries_checked,
        report.last_hash,
        report.anchored_seq,
        report.rows_checked,
        tuple(problems),
    )
