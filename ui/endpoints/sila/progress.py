"""Where a queue entry stands: on the queue, running (its run's state and current step), or ended."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from store.repositories import queue, runs
from store.states import FINAL_RUN_STATES, OPEN_QUEUE_STATES, QueueState


@dataclass(frozen=True)
class Progress:
    """What ObserveRun sends: the state, the run, the current step, how far along, and whether it has ended."""

    state: str
    run_id: int
    current_step: str
    steps_started: int
    steps_total: int
    ended: bool
    note: str

    def status(self) -> tuple[str, int, str, int, int]:
        """The fields of the Status structure (State, RunId, CurrentStep, StepsStarted, StepsTotal)."""
        return (self.state, self.run_id, self.current_step, self.steps_started, self.steps_total)

    @property
    def fraction(self) -> float:
        """0–1 for SiLA's execution info: steps started over steps in the protocol (1 once ended)."""
        if self.ended:
            return 1.0
        return min(1.0, self.steps_started / self.steps_total) if self.steps_total else 0.0


def progress(engine: Engine, entry_id: int, steps_total: int) -> Progress:
    """The entry ``entry_id`` now (UnknownQueueEntry when there is none)."""
    entry = queue.get(engine, entry_id)
    if entry.state in OPEN_QUEUE_STATES or entry.run_id is None:
        ended = entry.state in (QueueState.CANCELLED, QueueState.FAILED)
        return Progress(entry.state.value, 0, "", 0, steps_total, ended, entry.note)
    state = runs.state(engine, entry.run_id)
    steps = runs.steps(engine, entry.run_id)
    current = f"{steps[-1].index} {steps[-1].kind}" if steps else ""
    state_text = state.value if state is not None else "created"
    return Progress(state_text, entry.run_id, current, len(steps), steps_total, state in FINAL_RUN_STATES, "")
