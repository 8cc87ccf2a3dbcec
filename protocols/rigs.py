"""The rig as the command line reaches it: load it, check its devices, simulate it, open it for a run.

The ``ui`` layer never imports ``instruments`` (import-linter); the composition root (``ui.cli``)
starts and checks rigs through this module only, and never names a driver.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from instruments.clock import AcceleratedClock, Clock, SharedClock, clock_from_dict
from instruments.connection import RetryPolicy
from instruments.errors import InstrumentError
from instruments.rig.factory import RigDevices, endpoints_resolver, open_rig, rig_file_resolver
from instruments.rig.health import DeviceReport, check_rig
from instruments.rig.model import Rig, load_rig

if TYPE_CHECKING:  # the simulator (twin.chip, scipy) is imported when a rig is simulated, not by every runner
    from instruments.sim.rig import SimulatedRig

__all__ = [
    "AcceleratedClock",
    "DevicesCheck",
    "Rig",
    "SimulatedRig",
    "check_devices",
    "load_rig",
    "open_for_run",
    "read_endpoints",
    "simulated_rig",
]


@dataclass(frozen=True)
class DevicesCheck:
    """What `chiptwin devices check` found: the rig and one report per instrument."""

    rig: Rig
    reports: list[DeviceReport]

    @property
    def all_ok(self) -> bool:
        return all(r.ok for r in self.reports)


def __getattr__(name: str) -> Any:  # `from protocols.rigs import SimulatedRig`, without its import cost here
    if name == "SimulatedRig":
        from instruments.sim.rig import SimulatedRig

        return SimulatedRig
    raise AttributeError(name)


def read_endpoints(path: Path) -> dict[str, Any]:
    """The endpoints file `chiptwin sim-rig` writes (device → pty or TCP address, and its clock)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InstrumentError(
            f"cannot read endpoints file {path} ({exc}); fix: start `chiptwin sim-rig "
            "--endpoints-file` first and pass the file it writes"
        ) from None
    if not isinstance(document, dict):
        raise InstrumentError(
            f"endpoints file {path} is not a JSON object; fix: pass the file `chiptwin sim-rig` writes"
        )
    return document


def check_devices(rig_path: Path, endpoints: Path | None, timeout_s: float) -> DevicesCheck:
    """Talk to every instrument of the rig once: state, identity, a reading (read-only: no lease needed)."""
    rig = load_rig(rig_path)
    resolver = endpoints_resolver(read_endpoints(endpoints)) if endpoints else rig_file_resolver
    policy = RetryPolicy(timeout_s=timeout_s, retries=1, backoff_initial_s=0.05, backoff_max_s=0.5)
    with open_rig(rig, resolver, policy) as devices:
        reports = check_rig({i.name: i.driver for i in rig.instruments}, devices)
    return DevicesCheck(rig, reports)


def simulated_rig(
    rig_path: Path, scenario_path: Path | None, clock_rate: float, clock_file: Path | None = None
) -> SimulatedRig:
    """The simulated rig of a rig file (ptys, Modbus TCP on 127.0.0.1), not started: use it as a context.
    With ``clock_file`` its clock is a ``SharedClock`` there, which a runner in another process
    (`chiptwin run --endpoints ...`) holds while it computes (docs/clock.md)."""
    from instruments.sim.rig import SimulatedRig
    from instruments.sim.scenario import Scenario, load_scenario

    rig = load_rig(rig_path)
    names = {"chips": [c.name for c in rig.chips], "instruments": [i.name for i in rig.instruments]}
    scenario = load_scenario(scenario_path, **names) if scenario_path else Scenario()
    if clock_rate <= 0:
        raise InstrumentError(f"--clock-rate {clock_rate}: must be positive; fix: e.g. 1 (real time) or 3600")
    if clock_file is not None:
        try:
            return SimulatedRig(rig, scenario, SharedClock.create(clock_file, clock_rate))
        except OSError as exc:
            raise InstrumentError(
                f"--clock-file {clock_file}: cannot be written ({exc.strerror}); fix: a path in a writable folder"
            ) from None
    return SimulatedRig(rig, scenario, AcceleratedClock.starting_now(clock_rate))


def open_for_run(rig: Rig, endpoints: Path | None, clock_rate: float) -> tuple[RigDevices, Clock]:
    """The rig's devices (from the rig file, or a simulated rig's endpoints file) and the clock to run on."""
    if endpoints is None:
        return open_rig(rig, rig_file_resolver), AcceleratedClock.starting_now(clock_rate)
    document = read_endpoints(endpoints)
    return open_rig(rig, endpoints_resolver(document)), clock_from_dict(document.get("clock", {"kind": "real"}))
