"""Decisions as a record: every proposal of every run, who or which policy decided it, why, when,
whether it was signed, and — once executed — what was measured against what was predicted.

Shared by the panel's Proposals page and `chiptwin proposals list`; reads through
``store.repositories`` (proposals) and the samples and assays a proposal's execute step left.

Times: a proposal's ``created_utc_s`` is the run's clock (simulated time for an accelerated run);
a decision's ``decided_utc_s`` is wall-clock time (a person's, or the runner's when a policy decided).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, Engine, select

from store.repositories import proposals
from store.repositories.proposals import ProposalHistory
from store.schema import AssayResult, Sample
from store.states import ProposalStatus

POLICY_PREFIX = "policy:"
_LABEL = re.compile(r"^run(\d+)/step(\d+)/(.+)/(\d+)$")  # how the execute step labels its samples


@dataclass(frozen=True)
class DecisionRecord:
    """One proposal as the history shows it."""

    proposal_id: int
    run_id: int | None
    step_index: int | None
    status: str  # pending / approved / rejected / expired / executed
    created_utc_s: float  # the run's clock
    doses_um: dict[str, float]  # chip → proposed dose
    expected_information_gain: float | None
    decision: str  # approved / rejected / "" (none yet, or expired)
    decided_by: str  # a username, "policy:NAME", or ""
    by_policy: bool
    reason: str
    signed: bool
    decided_utc_s: float | None  # wall-clock

    @property
    def who(self) -> str:
        """In words: 'sam (signed)', 'policy auto_within_bounds', 'nobody (expired)', '—'."""
        if self.by_policy:
            return f"policy {self.decided_by.removeprefix(POLICY_PREFIX)}"
        if self.decided_by:
            return f"{self.decided_by} ({'signed' if self.signed else 'not signed'})"
        return "nobody (timed out)" if self.status == ProposalStatus.EXPIRED else "—"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "who": self.who}


def record_of(item: ProposalHistory) -> DecisionRecord:
    p = item.proposal
    decided = item.approvals[-1] if item.approvals else None  # the decision that counts is the last one
    try:
        chips = json.loads(p.design_json or "{}").get("chips") or {}
        doses = {str(c): float(d["dose_um"]) for c, d in chips.items() if isinstance(d, dict) and "dose_um" in d}
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        doses = {}
    return DecisionRecord(
        proposal_id=int(p.id or 0),
        run_id=p.run_id,
        step_index=p.step_index,
        status=str(p.status),
        created_utc_s=float(p.created_utc_s),
        doses_um=doses,
        expected_information_gain=p.expected_information_gain,
        decision="" if decided is None else str(decided.decision),
        decided_by="" if decided is None else decided.decided_by,
        by_policy=decided is not None and decided.decided_by.startswith(POLICY_PREFIX),
        reason="" if decided is None else decided.reason,
        signed=decided is not None and bool(decided.signature),
        decided_utc_s=None if decided is None else float(decided.decided_utc_s),
    )


def decision_records(source: Engine | Connection, run_id: int | None = None) -> list[DecisionRecord]:
    """Every proposal (of one run, or all), newest first."""
    return [record_of(item) for item in proposals.history(source, run_id)]


@dataclass(frozen=True)
class Observed:
    """An assay of an executed proposal's sample beside the prediction at the same time."""

    chip: str
    observable: str
    time_h: float  # since the execute step started (the design's sample time)
    observed: float
    predicted_mean: float
    predicted_p05: float
    predicted_p95: float

    @property
    def within_band(self) -> bool:
        return self.predicted_p05 <= self.observed <= self.predicted_p95


def outcome(source: Engine | Connection, proposal_id: int) -> list[Observed]:
    """What was measured after an executed proposal against its 90 % predicted band (empty when the
    proposal was not executed, its samples have no assays yet, or it stored no prediction)."""
    proposal = proposals.get(source, proposal_id)
    if proposal is None or proposal.status != ProposalStatus.EXECUTED or proposal.run_id is None:
        return []
    try:
        design = json.loads(proposal.design_json).get("chips") or {}
        predicted = json.loads(proposal.predicted_json or "{}").get("chips") or {}
    except (json.JSONDecodeError, AttributeError):
        return []
    after = int(proposal.step_index or 0)
    later = [int(p.step_index) for p in proposals.of_run(source, proposal.run_id) if (p.step_index or 0) > after]
    rows = _assays(source, proposal.run_id, after, min(later, default=None))
    found = []
    for chip, k, analyte, value in rows:
        times = (design.get(chip) or {}).get("sample_times_h") or []
        band = ((predicted.get(chip) or {}).get("observables") or {}).get(analyte)
        if k >= len(times) or not band or value is None:
            continue
        t_h = float(times[k])
        found.append(
            Observed(
                chip,
                analyte,
                t_h,
                float(value),
                _at(band, "mean", t_h),
                _at(band, "p05", t_h),
                _at(band, "p95", t_h),
            )
        )
    return sorted(found, key=lambda o: (o.chip, o.observable, o.time_h))


def _assays(
    source: Engine | Connection, run_id: int, after_step: int, before_step: int | None
) -> list[tuple[str, int, str, float | None]]:
    """(chip, sample number, analyte, value) of the first step after ``after_step`` (and before the next
    proposal's ``before_step``) that sampled by design: the proposal's execute step."""
    query = (
        select(Sample.label, AssayResult.analyte, AssayResult.value)
        .join(AssayResult, AssayResult.sample_id == Sample.id)
        .where(Sample.run_id == run_id, Sample.label.like(f"run{run_id}/step%"))
    )
    if isinstance(source, Connection):
        rows = source.execute(query).all()
    else:
        with source.connect() as connection:
            rows = connection.execute(query).all()
    by_step: dict[int, list[tuple[str, int, str, float | None]]] = {}
    for label, analyte, value in rows:
        match = _LABEL.match(label)
        step = int(match.group(2)) if match else -1
        if match and step > after_step and (before_step is None or step < before_step):
            by_step.setdefault(step, []).append((match.group(3), int(match.group(4)), analyte, value))
    return by_step[min(by_step)] if by_step else []


def _at(band: dict[str, Any], key: str, t_h: float) -> float:
    """The band's ``key`` series at ``t_h`` (linear between its points, its end values outside)."""
    times = [float(t) for t in band.get("time_h") or []]
    values = [float(v) for v in band.get(key) or []]
    if not times or len(times) != len(values):
        return float("nan")
    if t_h <= times[0]:
        return values[0]
    for (t0, v0), (t1, v1) in zip(zip(times, values), zip(times[1:], values[1:])):
        if t0 <= t_h <= t1:
            return v0 if t1 == t0 else v0 + (v1 - v0) * (t_h - t0) / (t1 - t0)
    return values[-1]


def outcome_summary(observed: list[Observed]) -> str:
    """'5 of 6 assays within the predicted 90 % band' (or '' when there is nothing to compare)."""
    if not observed:
        return ""
    inside = sum(o.within_band for o in observed)
    return f"{inside} of {len(observed)} assays within the predicted 90 % band"


# ------------------------------------------------------------------ tables for the panel


def run_starts(source: Engine | Connection) -> dict[int, float | None]:
    from store.repositories import runs

    return {r.id: r.started_utc_s for r in runs.listing(source)}


def table(records: list[DecisionRecord], outcomes: dict[int, list[Observed]], starts: dict[int, float | None]) -> Any:
    """The history as a DataFrame: one row per proposal, newest first."""
    import pandas as pd

    rows = []
    for r in records:
        start = starts.get(r.run_id) if r.run_id is not None else None
        rows.append(
            {
                "proposal": r.proposal_id,
                "run": r.run_id,
                "status": r.status,
                "decided by": r.who,
                "signed": r.signed,
                "reason": r.reason,
                "decided (UTC)": None
                if r.decided_utc_s is None
                else pd.Timestamp(r.decided_utc_s, unit="s", tz="UTC").floor("s"),
                "outcome": outcome_summary(outcomes.get(r.proposal_id, [])),
                "doses (µM)": ", ".join(f"{c} {d:g}" for c, d in r.doses_um.items()),
                "proposed (h into the run)": None if start is None else round((r.created_utc_s - start) / 3600.0, 2),
            }
        )
    return pd.DataFrame(rows)


def outcome_table(observed: list[Observed]) -> Any:
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "chip": o.chip,
                "observable": o.observable,
                "time (h)": o.time_h,
                "observed (µM)": o.observed,
                "predicted (µM)": o.predicted_mean,
                "90 % band": f"{o.predicted_p05:.3g} – {o.predicted_p95:.3g}",
                "within": o.within_band,
            }
            for o in observed
        ]
    )
