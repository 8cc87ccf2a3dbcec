"""A schedule as a flat list of superposition terms: (output, source, elapsed time) triples.

For a linear model the state is a sum over the sources acting since the last reset: each
bolus, each infusion (a start paired with its stop), each steady state set by an SS record.
Which sources reach an output, and how long before it they acted, depend only on the
schedule, so ``build_terms`` works them out once per dataset; ``twin.pk.fast`` then
evaluates all terms for new parameters with a few array operations.

The rules are the lockstep solver's (``twin.pk.linear``), read off the same action list:

- a source reaches every output after it (in action order) up to the next reset of its
  subject; an SS 1 record is preceded by its own reset action;
- the RATE actions of one subject, compartment and |rate| between two resets are paired
  first in, first out (each start with the next stop): the sum of the infusions is the same
  whatever the pairing, as long as every stop follows its start, and each term then stays
  small (no cancellation between a start and its stop long after an infusion);
- a start without a stop before the next reset runs to it (infinite duration here).

Subjects whose actions break these assumptions (time going back between resets, a stop
before any start), and subjects beyond the memory budget ``MAX_TERMS`` (the number of terms is
outputs × sources since the last reset), are returned in ``fallback`` and left to the lockstep
solver.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from twin.pk.schedule import BOLUS, OUTPUT, RATE, RESET, SS, Schedule, past_doses

NEVER = np.iinfo(np.int64).max
# about 100 bytes per term when built and evaluated: above this, the subjects with the most
# terms (long dosing histories × many outputs) go to the lockstep solver instead
MAX_TERMS = 4_000_000


@dataclass
class Family:
    """Terms of one kind. ``out``: compact output index; ``source``: subject·n_inputs + cmt."""

    out: np.ndarray
    subject: np.ndarray
    source: np.ndarray
    weight: np.ndarray  # amount (bolus), rate (infusion); 1 (steady state)
    elapsed: np.ndarray  # time from the source's action (bolus, SS) or its end (infusion)
    extra: np.ndarray = field(default_factory=lambda: np.zeros(0))  # infusion: duration so far; SS: record


@dataclass
class SteadyTerms:
    """Per SS record: its subject, compartment and regime; ``running``: (record, elapsed) pairs
    of the regime's infusions still running at the record's time."""

    subject: np.ndarray
    cmt: np.ndarray
    amount: np.ndarray
    rate: np.ndarray
    lag: np.ndarray
    interval: np.ndarray
    duration: np.ndarray
    ended: np.ndarray  # k_ended of ``past_doses``
    running_record: np.ndarray
    running_elapsed: np.ndarray


@dataclass
class Terms:
    n_outputs: int
    bolus: Family
    infusion: Family
    steady: Family
    records: SteadyTerms
    fallback: np.ndarray  # subjects for the lockstep solver
    output_subject: np.ndarray  # subject of each compact output


def build_terms(
    schedule: Schedule, n_inputs: int, wanted: np.ndarray, n_rows: int, excluded: np.ndarray | None = None
) -> Terms:
    """The terms of the outputs of ``wanted`` rows (sorted, unique); ``n_inputs`` compartments."""
    kind, subject, time = schedule.kind, schedule.subject, schedule.time_h
    n = len(kind)
    cut = np.ones(n, dtype=bool)
    cut[1:] = (subject[1:] != subject[:-1]) | (kind[1:] == RESET)
    segment = np.cumsum(cut) - 1
    first = np.flatnonzero(cut)[segment]  # first action of each action's segment
    fallback = np.zeros(schedule.n_subjects, dtype=bool)
    if excluded is not None:
        fallback[excluded] = True
    fallback[subject[1:][~cut[1:] & (time[1:] < time[:-1])]] = True
    starts, stop_of = _pair_infusions(schedule, segment, fallback)

    position = np.full(n_rows, -1)
    position[wanted] = np.arange(len(wanted))
    outputs = np.flatnonzero(kind == OUTPUT)
    compact = np.full(n, -1)
    compact[outputs] = position[schedule.value[outputs].astype(np.int64)]
    outputs = outputs[compact[outputs] >= 0]
    output_subject = np.zeros(len(wanted), dtype=np.int64)
    output_subject[compact[outputs]] = subject[outputs]
    _limit_terms(np.union1d(np.flatnonzero((kind == BOLUS) | (kind == SS)), starts), outputs, first, subject, fallback)
    outputs = outputs[~fallback[subject[outputs]]]

    def family(sources: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sources = sources[~fallback[subject[sources]]]
        lo, hi = np.searchsorted(sources, first[outputs]), np.searchsorted(sources, outputs)
        count = hi - lo
        out = np.repeat(outputs, count)
        src = sources[np.repeat(lo - np.cumsum(count) + count, count) + np.arange(count.sum())]
        return out, src

    def make(out, src, cmt, weight, elapsed, extra=None) -> Family:
        s = subject[src]
        return Family(compact[out], s, s * n_inputs + cmt, weight, elapsed, np.zeros(0) if extra is None else extra)

    out, src = family(np.flatnonzero(kind == BOLUS))
    bolus = make(out, src, schedule.cmt[src], schedule.value[src], time[out] - time[src])
    out, src = family(starts)
    stop = stop_of[np.searchsorted(starts, src)]
    ended = stop < out
    until = time[np.where(ended, stop, out)]  # the infusion's end, or the output if still running
    infusion = make(out, src, schedule.cmt[src], schedule.value[src], time[out] - until, until - time[src])
    steady_actions = np.flatnonzero(kind == SS)
    out, src = family(steady_actions)
    record = schedule.value[src].astype(np.int64)
    steady = make(out, src, schedule.steady.cmt[record], np.ones(len(src)), time[out] - time[src], record)
    records = _steady_records(schedule, steady_actions)
    return Terms(len(wanted), bolus, infusion, steady, records, np.flatnonzero(fallback), output_subject)


def _limit_terms(
    sources: np.ndarray, outputs: np.ndarray, first: np.ndarray, subject: np.ndarray, fallback: np.ndarray
) -> None:
    """Leave to the lockstep solver the subjects with the most terms, beyond ``MAX_TERMS`` in all."""
    count = np.searchsorted(sources, outputs) - np.searchsorted(sources, first[outputs])
    per_subject = np.bincount(subject[outputs], count, minlength=len(fallback)) * ~fallback
    total = per_subject.sum()
    if total <= MAX_TERMS:
        return
    order = np.argsort(-per_subject, kind="stable")
    remaining = total - np.cumsum(per_subject[order])
    fallback[order[: np.searchsorted(-remaining, -MAX_TERMS) + 1]] = True


def _pair_infusions(schedule: Schedule, segment: np.ndarray, fallback: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Infusion starts (action indices, sorted) and each one's stop (``NEVER`` if none).

    Marks in ``fallback`` the subjects with a stop that has no start before it.
    """
    actions = np.flatnonzero(schedule.kind == RATE)
    value, cmt = schedule.value[actions], schedule.cmt[actions]
    order = np.lexsort((actions, np.abs(value), cmt, segment[actions]))
    actions, value, cmt, seg = actions[order], value[order], cmt[order], segment[actions][order]
    new = np.ones(len(actions), dtype=bool)
    new[1:] = (seg[1:] != seg[:-1]) | (cmt[1:] != cmt[:-1]) | (np.abs(value[1:]) != np.abs(value[:-1]))
    group = np.cumsum(new) - 1
    step = np.where(value > 0, 1, -1)
    running = np.cumsum(step)
    running -= (running - step)[new][group]  # open infusions within the group, after each action
    bad_group = np.zeros(group.max(initial=-1) + 1, dtype=bool)
    bad_group[group[running < 0]] = True
    fallback[schedule.subject[actions[bad_group[group]]]] = True
    is_start = (value > 0) & ~bad_group[group]
    is_stop = (value < 0) & ~bad_group[group]
    start_group, stop_group = group[is_start], group[is_stop]
    rank_stop = np.arange(len(stop_group)) - np.searchsorted(stop_group, stop_group)
    stop_of = np.full(len(start_group), NEVER)
    stop_of[np.searchsorted(start_group, stop_group) + rank_stop] = actions[is_stop]
    starts = actions[is_start]
    order = np.argsort(starts)
    return starts[order], stop_of[order]


def _steady_records(schedule: Schedule, steady_actions: np.ndarray) -> SteadyTerms:
    steady = schedule.steady
    n = len(steady.cmt)
    subject = np.zeros(n, dtype=np.int64)
    subject[schedule.value[steady_actions].astype(np.int64)] = schedule.subject[steady_actions]
    duration = steady.duration_h
    ended = np.zeros(n, dtype=np.int64)
    running_record, running_elapsed = [], []
    for i in range(n):
        if steady.interval_h[i] == 0:
            continue
        k_started, ended[i] = past_doses(steady.lag_h[i], duration[i], steady.interval_h[i])
        if steady.rate_mg_per_h[i] > 0:
            for k in range(k_started, ended[i]):
                running_record.append(i)
                running_elapsed.append(k * steady.interval_h[i] - steady.lag_h[i])
    return SteadyTerms(
        subject,
        steady.cmt,
        steady.amount_mg,
        steady.rate_mg_per_h,
        steady.lag_h,
        steady.interval_h,
        duration,
        ended,
        np.array(running_record, dtype=np.int64),
        np.array(running_elapsed, dtype=float),
    )
