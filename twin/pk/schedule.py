"""NONMEM dosing records -> a time-ordered list of elementary actions per subject.

Actions: OUTPUT (predict a row), BOLUS (add an amount), RATE (change a compartment's
infusion rate by a signed amount), RESET (all amounts and infusions to zero), SS (set or add a
steady state, computed by the solver from ``SteadyDoses``). Both solvers run the same list,
so the event semantics live here once. The choices, following NONMEM:

- A dose of F·AMT into CMT starts at TIME + ALAG; RATE > 0 infuses at RATE for F·AMT/RATE,
  RATE -1 at rN for F·AMT/rN, RATE -2 over dN at F·AMT/dN. ADDL adds doses every II.
- EVID 3 resets, EVID 4 resets then doses, SS 1 resets then puts the system at steady state,
  SS 2 adds the steady state to the current amounts. A reset cancels everything pending
  (infusions running, lagged and additional doses not yet given). ADDL doses after an SS
  dose are ordinary doses. Doses of the steady-state regime not over at the SS record's time
  go on after it: infusions still running, and (lag > II) lagged doses still to come. A
  constant-infusion steady state (AMT 0, RATE > 0, II 0) sets the state only: the infusion
  does not go on after the record (what NONMEM 7.4.3 does, nmtest subject 26).
- Same time: data records act in file order (a row's own actions, then its prediction);
  generated actions (lagged and additional doses, infusion ends) come before the records of
  that time, so an observation at the time a lagged dose lands sees it (NONMEM, nmtest
  subjects 15–17).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from twin.dataset import MAX_DOSE_EVENTS, row_label, subject_index
from twin.errors import DatasetError
from twin.pk.params import ResolvedParameters

OUTPUT, BOLUS, RATE, RESET, SS, NOOP = 0, 1, 2, 3, 4, -1
# order at one time: generated actions, then each record's own, in file order ...
GENERATED, OWN = 0, 1
# ... and within a record: reset, steady state, its regime's running infusions, dose, output
_SUB = {RESET: 0, SS: 1, RATE: 3, BOLUS: 3, OUTPUT: 9}
_CONTINUED = 2


@dataclass(frozen=True)
class SteadyDoses:
    """The dosing regimen of each SS record (index = the SS action's ``value``)."""

    cmt: np.ndarray  # 0-based
    amount_mg: np.ndarray  # F·AMT (0 for a constant infusion)
    rate_mg_per_h: np.ndarray  # 0 for a bolus
    lag_h: np.ndarray
    interval_h: np.ndarray  # II; 0 for a constant infusion
    mode: np.ndarray  # 1 (reset first) or 2 (add)

    @property
    def duration_h(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.rate_mg_per_h > 0, self.amount_mg / self.rate_mg_per_h, 0.0)


@dataclass(frozen=True)
class Schedule:
    """Actions sorted by subject then order of execution."""

    n_subjects: int
    subject: np.ndarray
    time_h: np.ndarray
    kind: np.ndarray
    cmt: np.ndarray  # 0-based compartment (BOLUS, RATE)
    value: np.ndarray  # amount (mg), rate change (mg/h), SS index, or output row
    steady: SteadyDoses

    def bounds(self) -> np.ndarray:
        """Start of each subject's actions in the arrays, plus the end."""
        return np.searchsorted(self.subject, np.arange(self.n_subjects + 1))


class _Actions:
    """Columns of actions being collected (one array per field and piece)."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(self, row, time, kind, cmt, value, cls, sub) -> None:
        n = len(row)
        self.parts.append(
            tuple(
                np.broadcast_to(np.asarray(a, dtype=float), (n,))
                for a in (row, time, np.full(n, kind), cmt, value, cls, sub)
            )
        )

    def columns(self) -> list[np.ndarray]:
        return [np.concatenate([p[i] for p in self.parts]) for i in range(7)]


def build_schedule(data: pd.DataFrame, values: ResolvedParameters) -> Schedule:
    """The action list of a prepared dataset (``twin.dataset.prepare_dataset``)."""
    t = data["TIME"].to_numpy(float)
    evid = data["EVID"].to_numpy()
    ss = data["SS"].to_numpy()
    amount, rate, duration = _dose_amounts(data, values)
    dose = np.isin(evid, (1, 4))
    reset = np.isin(evid, (3, 4)) | (dose & (ss == 1))
    rows = np.arange(len(data))
    cmt = data["CMT"].to_numpy() - 1
    actions = _Actions()
    actions.add(rows[reset], t[reset], RESET, 0, 0, OWN, _SUB[RESET])
    actions.add(rows, t, OUTPUT, 0, rows, OWN, _SUB[OUTPUT])
    steady_rows = rows[dose & (ss > 0)]
    actions.add(steady_rows, t[steady_rows], SS, cmt[steady_rows], np.arange(len(steady_rows)), OWN, _SUB[SS])
    _add_doses(actions, data, dose & (amount > 0), amount, rate, duration, values.alag_h)
    steady = _steady_doses(data, steady_rows, amount, rate, values.alag_h)
    _check_steady_tails_bounded(data, steady_rows, steady)
    _add_steady_tails(actions, steady_rows, t, steady)
    return _sorted(actions, data, reset, steady)


def _dose_amounts(data: pd.DataFrame, values: ResolvedParameters) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """F·AMT, infusion rate (0 = bolus) and duration of each row's dose."""
    amt = data["AMT"].to_numpy(float)
    rate_col = data["RATE"].to_numpy(float)
    dose = data["EVID"].isin((1, 4)).to_numpy() & ((amt > 0) | (rate_col > 0))
    _require(data, dose & ~(values.f >= 0), "bioavailability f{n} is missing or negative; give a value ≥ 0")
    _require(data, dose & ~(values.alag_h >= 0), "lag time alag{n} is missing or negative; give a value ≥ 0")
    _require(
        data,
        dose & (rate_col == -1) & ~(values.rate_mg_per_h > 0),
        "RATE -1 needs the modelled rate r{n} > 0; pass r{n}=<mg/h> or r{n}=@column",
    )
    _require(
        data,
        dose & (rate_col == -2) & ~(values.duration_h > 0),
        "RATE -2 needs the modelled duration d{n} > 0; pass d{n}=<h> or d{n}=@column",
    )
    amount = np.where(dose, values.f * amt, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.select(
            [rate_col > 0, rate_col == -1, rate_col == -2],
            [rate_col, values.rate_mg_per_h, amount / values.duration_h],
            0.0,
        )
        duration = np.where(rate > 0, amount / rate, 0.0)
    return amount, np.where(dose, rate, 0.0), duration


def _require(data: pd.DataFrame, bad: np.ndarray, message: str) -> None:
    """Refuse the first bad dose row; ``{n}`` in the message becomes its CMT."""
    if bad.any():
        at = int(np.flatnonzero(bad)[0])
        raise DatasetError(f"{row_label(data, at)}: " + message.format(n=int(data["CMT"].iloc[at])))


def _add_doses(actions: _Actions, data, doses, amount, rate, duration, lag) -> None:
    """Each dose record's dose and its ADDL repeats, as boluses or infusion start/stop pairs."""
    rows = np.flatnonzero(doses)
    repeats = data["ADDL"].to_numpy(int)[rows] + 1
    row = np.repeat(rows, repeats)
    k = np.arange(len(row)) - np.repeat(np.cumsum(repeats) - repeats, repeats)
    t = data["TIME"].to_numpy(float)[row]
    start = t + k * data["II"].to_numpy(float)[row] + lag[row]
    cls = np.where(start == t, OWN, GENERATED)
    cmt = data["CMT"].to_numpy()[row] - 1
    bolus = rate[row] == 0
    actions.add(row[bolus], start[bolus], BOLUS, cmt[bolus], amount[row][bolus], cls[bolus], _SUB[BOLUS])
    inf = ~bolus
    actions.add(row[inf], start[inf], RATE, cmt[inf], rate[row][inf], cls[inf], _SUB[RATE])
    actions.add(row[inf], start[inf] + duration[row][inf], RATE, cmt[inf], -rate[row][inf], GENERATED, _SUB[RATE])


def _steady_doses(data, steady_rows, amount, rate, lag) -> SteadyDoses:
    constant = (data["AMT"].to_numpy()[steady_rows] == 0) & (rate[steady_rows] > 0)
    return SteadyDoses(
        cmt=data["CMT"].to_numpy(int)[steady_rows] - 1,
        amount_mg=np.where(constant, 0.0, amount[steady_rows]),
        rate_mg_per_h=rate[steady_rows],
        lag_h=lag[steady_rows],
        interval_h=data["II"].to_numpy(float)[steady_rows],
        mode=data["SS"].to_numpy(int)[steady_rows],
    )


def _add_steady_tails(actions: _Actions, steady_rows, t, steady: SteadyDoses) -> None:
    """The regime's doses not over at the SS record's time go on after it.

    Infusions running at that time continue to their ends; with a lag longer than II, doses
    given before the record but lagged past it are still to come.
    """
    for i, row in enumerate(steady_rows):
        rate, interval, lag, cmt = steady.rate_mg_per_h[i], steady.interval_h[i], steady.lag_h[i], steady.cmt[i]
        if interval == 0:  # constant infusion at steady state: NONMEM stops it at the record
            continue
        duration = steady.duration_h[i]
        k_started, k_ended = past_doses(lag, duration, interval)
        if rate > 0:
            for k in range(k_started, k_ended):
                actions.add([row], t[row], RATE, cmt, rate, OWN, _CONTINUED)
                actions.add([row], t[row] + lag + duration - k * interval, RATE, cmt, -rate, GENERATED, _CONTINUED)
        for k in range(1, k_started):
            start = t[row] + lag - k * interval
            if rate > 0:
                actions.add([row], start, RATE, cmt, rate, GENERATED, _CONTINUED)
                actions.add([row], start + duration, RATE, cmt, -rate, GENERATED, _CONTINUED)
            else:
                actions.add([row], start, BOLUS, cmt, steady.amount_mg[i], GENERATED, _CONTINUED)


def _check_steady_tails_bounded(data: pd.DataFrame, steady_rows: np.ndarray, steady: SteadyDoses) -> None:
    """A steady-state infusion lasting a million intervals (tiny modelled rate, huge lag) would
    make the tail loop below run for ever: refuse it, naming the row (bounded work)."""
    for i, row in enumerate(steady_rows):
        interval = steady.interval_h[i]
        if interval == 0:
            continue
        span = (abs(steady.lag_h[i]) + steady.duration_h[i]) / interval
        if not span <= MAX_DOSE_EVENTS:
            raise DatasetError(
                f"{row_label(data, int(row))}: this steady-state dose's lag and infusion "
                f"({steady.lag_h[i]:g} h + {steady.duration_h[i]:g} h) span {span:g} intervals of "
                f"{interval:g} h, above the limit of {MAX_DOSE_EVENTS:,}; check the units of AMT, "
                "RATE and the lag"
            )


def past_doses(lag_h: float, duration_h: float, interval_h: float) -> tuple[int, int]:
    """Which doses of a steady-state regime have started and ended by the SS record's time.

    The dose given k intervals before the record (k ≥ 1) acts over [L − kII, L + D − kII]
    relative to it. Returns (k_started, k_ended): it has started when k ≥ k_started
    (kII ≥ L) and ended when k ≥ k_ended (kII ≥ L + D); k_started ≤ k < k_ended are running.
    Doses with k < k_started (lag longer than II) are given after the record.
    """

    def first_k(offset_h: float) -> int:
        return max(1, int(np.ceil(offset_h / interval_h - 1e-12)))

    return first_k(lag_h), first_k(lag_h + duration_h)


def _sorted(actions: _Actions, data: pd.DataFrame, reset: np.ndarray, steady: SteadyDoses) -> Schedule:
    row, time, kind, cmt, value, cls, sub = actions.columns()
    row = row.astype(np.int64)
    subjects = subject_index(data)
    epochs = _epochs(subjects, reset)
    subject, epoch = subjects[row], epochs[row]
    # Generated actions after the last record of their epoch cannot change any prediction
    # (a reset or the end of the data follows): drop them, which also cancels them at a reset.
    epoch_end = pd.Series(data["TIME"].to_numpy(float)).groupby([subjects, epochs]).transform("max").to_numpy()
    keep = (cls == OWN) | (time <= epoch_end[row])
    order = np.lexsort((sub[keep], row[keep], cls[keep], time[keep], epoch[keep], subject[keep]))
    pick = np.flatnonzero(keep)[order]
    return Schedule(
        int(subjects.max(initial=-1)) + 1,
        subject[pick],
        time[pick],
        kind[pick].astype(int),
        cmt[pick].astype(int),
        value[pick],
        steady,
    )


def _epochs(subjects: np.ndarray, reset: np.ndarray) -> np.ndarray:
    """Per row, how many resets its subject has had up to and including it."""
    count = np.cumsum(reset)
    first = np.flatnonzero(np.diff(subjects, prepend=-1) != 0)
    before_subject = (count - reset)[first]
    return count - before_subject[subjects]
