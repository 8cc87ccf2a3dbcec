"""Each instrument's connection state as the runner sees it, written to the store when it changes.

The drivers keep their connection's health (``instruments.connection``: ok → degraded →
reconnecting → lost); the runner copies it to ``Instrument.connection_state`` so the panel,
which never touches instruments, shows what the runner knows. An instrument whose driver
could not be built is ``lost``. States are read from memory (no I/O) after every poll.
"""

from __future__ import annotations

import threading
from typing import Any

from protocols.run.record import Recorder

LOST = "lost"


class InstrumentStates:
    def __init__(self, recorder: Recorder, devices: Any, instrument_ids: dict[str, int]) -> None:
        self.recorder, self.devices, self.instrument_ids = recorder, devices, instrument_ids
        self.written: dict[str, str] = {}
        self._lock = threading.Lock()  # one poller worker per bus calls observe()

    def state_of(self, name: str) -> str | None:
        device = self.devices.devices.get(name)
        if device is None:
            return LOST if name in self.devices.failed else None
        state = getattr(device, "connection_state", None)
        return None if state is None else str(getattr(state, "value", state))

    def observe(self) -> None:
        """Write every instrument whose state changed since it was last written."""
        with self._lock:  # held while writing: two pollers never store an older state over a newer one
            changed = {
                name: state
                for name in self.instrument_ids
                if (state := self.state_of(name)) is not None and self.written.get(name) != state
            }
            if changed:
                self.recorder.instrument_states({self.instrument_ids[n]: s for n, s in changed.items()})
                self.written.update(changed)
