"""The simulated rig: every instrument of a rig file as a simulator on a real endpoint.

Serial devices (NE-1000, Reglo ICC, TEER) each get a pty; Modbus devices are grouped as
the rig file groups them — one ``ModbusTcpSim`` on 127.0.0.1 per TCP endpoint (a gateway
with several unit ids), one ``ModbusRtuSim`` pty per RTU line. Readings come from one
``liver_chip`` twin per chip, run with the scenario's hidden parameters and stepped on
the shared clock by a background thread; pumps really change the chips (each dispensed
increment of a pump that ``feeds`` chips becomes a ``Dose`` of ``volume ×
drug_concentration_um`` into every chip it feeds; a withdrawal becomes a ``Sample``).

Times inside the rig (fault ``at_s``, sensor drift, chip time) are *rig seconds*: clock
time since ``start()``. Usage::

    with SimulatedRig(rig, scenario, AcceleratedClock.starting_now(3600)) as sim:
        with open_rig(rig, resolver=endpoints_resolver(sim.endpoints_document())) as devices:
            ...
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable

from instruments.clock import AcceleratedClock, Clock, RealClock
from instruments.drivers.modbus_sensor import RegisterMap
from instruments.rig.model import Rig
from instruments.rig.schema import InstrumentSpec
from instruments.sim.faults import FaultPlan
from instruments.sim.modbus_devices import (
    RegisterMapSim,
    SimModbusBus,
    SimModbusDevice,
    SimSignal,
    ph_arc_sim,
    visiferm_do_sim,
)
from instruments.sim.modbus_sim import ModbusRtuSim, ModbusTcpSim
from instruments.sim.ne1000_sim import NE1000Sim, PumpState
from instruments.sim.pty_device import PtyDevice
from instruments.sim.reglo_sim import RegloSim
from instruments.sim.scenario import Scenario, SensorNoise
from instruments.sim.teer_sim import TeerSim
from twin.chip import ChipState, Dose, MediaChange, Sample, advance, apply_event, initial_state

STEP_WALL_S = 0.02  # the stepper looks at the clock this often (wall seconds) ...
STEP_MIN_S = 3600.0  # ... and advances the chips once an hour of rig time has passed (reads advance them too)
DO_SATURATION_MG_L_37C = 6.73  # mg/L of O2 at 100 % air saturation, 37 °C (for a mg/L sensor)


class SimChip:
    """One chip's twin, advanced to rig time on demand; thread-safe."""

    def __init__(self, name: str, params: dict[str, float], constants: dict[str, float]) -> None:
        self.name, self.params = name, params
        self._state = initial_state(params, constants)
        self._lock = threading.Lock()

    def _advance_to(self, t_s: float) -> None:
        dt_h = t_s / 3600.0 - self._state.time_h
        if dt_h > 0:
            self._state = advance(self._state, dt_h, self.params)

    def state_at(self, t_s: float) -> ChipState:
        with self._lock:
            self._advance_to(t_s)
            return self._state

    def observables_at(self, t_s: float) -> dict[str, float]:
        return self.state_at(t_s).observables(self.params)

    def dose(self, t_s: float, amount_nmol: float, volume_ml: float) -> None:
        with self._lock:
            self._advance_to(t_s)
            self._state = apply_event(self._state, Dose(self._state.time_h, amount_nmol, volume_ml))

    def sample(self, t_s: float, volume_ml: float) -> dict[str, float]:
        """Remove ``volume_ml`` of medium; the true concentrations it held."""
        with self._lock:
            self._advance_to(t_s)
            before = self._state.observables(self.params)
            self._state = apply_event(self._state, Sample(self._state.time_h, volume_ml))
            return before

    def media_change(self, t_s: float, volume_ml: float, concentration_um: float = 0.0) -> None:
        """Replace the medium by ``volume_ml`` of fresh medium at ``concentration_um``."""
        with self._lock:
            self._advance_to(t_s)
            self._state = apply_event(self._state, MediaChange(self._state.time_h, volume_ml, concentration_um))


class SimulatedRig:
    def __init__(self, rig: Rig, scenario: Scenario | None = None, clock: Clock | None = None) -> None:
        self.rig, self.scenario = rig, scenario or Scenario()
        # before any pty or socket exists: a fault the device cannot have is the user's error
        self.scenario.check_against([c.name for c in rig.chips], {i.name: i.driver for i in rig.instruments})
        self.clock: Clock = clock or AcceleratedClock.starting_now(3600.0)
        self.plan: FaultPlan = self.scenario.plan()
        self.start_s = 0.0
        self.chips: dict[str, SimChip] = {}
        self.serial_sims: dict[str, PtyDevice] = {}
        self.modbus_servers: dict[str, ModbusTcpSim | ModbusRtuSim] = {}
        self._modbus_of: dict[str, str] = {}  # instrument -> server key
        self._stop = threading.Event()
        self._stepper: threading.Thread | None = None

    # -- time ---------------------------------------------------------------------------
    def rig_time_s(self) -> float:
        """Clock seconds since ``start()`` (the time of faults, drift and the chips)."""
        return self.clock.now_s() - self.start_s

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> SimulatedRig:
        self.start_s = self.clock.now_s()
        for chip in self.rig.chips:
            constants = {"V_m0": chip.v_medium_ml, "V_c": chip.v_cell_ml, "N_cells": chip.n_cells_million}
            if chip.kla_per_h is not None:
                constants["kla"] = chip.kla_per_h
            self.chips[chip.name] = SimChip(chip.name, self.scenario.truth_for(chip.name), constants)
        try:
            self._start_devices()
        except BaseException:
            self.stop()
            raise
        self._stepper = threading.Thread(target=self._step_loop, name="sim-rig-chips", daemon=True)
        self._stepper.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._stepper is not None:
            self._stepper.join(timeout=5.0)
            self._stepper = None
        for sim in self.serial_sims.values():
            sim.stop()
        for server in self.modbus_servers.values():
            server.stop()

    def __enter__(self) -> SimulatedRig:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _step_loop(self) -> None:
        """Keeps each on-demand advance short. Not every 20 ms: an advance costs about a millisecond
        per chip however short, which on a held (1x) or landed clock was a fifth of a core for nothing."""
        stepped_s = self.rig_time_s()
        while not self._stop.wait(STEP_WALL_S):
            now_s = self.rig_time_s()
            if now_s - stepped_s < STEP_MIN_S:
                continue
            stepped_s = now_s
            for chip in self.chips.values():
                chip.state_at(now_s)

    # -- what clients see ---------------------------------------------------------------
    @property
    def endpoints(self) -> dict[str, dict[str, Any]]:
        """Instrument → connection override (kind, port, host) for ``endpoints_resolver``."""
        found: dict[str, dict[str, Any]] = {}
        for instrument in self.rig.instruments:
            if instrument.name in self.serial_sims:
                found[instrument.name] = {"kind": "serial", "port": self.serial_sims[instrument.name].path}
            elif isinstance(server := self.modbus_servers.get(self._modbus_of.get(instrument.name, "")), ModbusTcpSim):
                found[instrument.name] = {"kind": "tcp", "host": server.host, "port": server.port}
            elif server is not None:
                found[instrument.name] = {"kind": "rtu", "port": server.port}
        return found

    def endpoints_document(self) -> dict[str, Any]:
        """What ``chiptwin sim-rig`` writes to its endpoints file."""
        clock = self.clock.to_dict() if hasattr(self.clock, "to_dict") else RealClock().to_dict()
        return {
            "rig": self.rig.name,
            "pid": os.getpid(),
            "clock": clock,
            "rig_start_utc_s": self.start_s,
            "instruments": self.endpoints,
        }

    def chip_state(self, name: str) -> ChipState:
        """The chip's true state now."""
        return self.chips[name].state_at(self.rig_time_s())

    def chip_observables(self, name: str) -> dict[str, float]:
        return self.chips[name].observables_at(self.rig_time_s())

    def sample(self, chip: str, volume_ml: float) -> dict[str, float]:
        """Take an offline sample now: the true values, and when the assay result is due (rig s)."""
        now_s = self.rig_time_s()
        truth = self.chips[chip].sample(now_s, volume_ml)
        return {
            "t_s": now_s,
            "available_at_s": now_s + self.scenario.assay_delay_h * 3600.0,
            "drug_medium_um": truth["drug_medium"],
            "metabolite_medium_um": truth["metabolite_medium"],
        }

    def media_change(self, chip: str, volume_ml: float, concentration_um: float = 0.0) -> None:
        """A media change on the bench (a person's or a liquid handler's job on a real rig)."""
        self.chips[chip].media_change(self.rig_time_s(), volume_ml, concentration_um)

    # -- building the devices -----------------------------------------------------------
    def _start_devices(self) -> None:
        buses: dict[str, tuple[InstrumentSpec, list[SimModbusDevice]]] = {}
        for index, instrument in enumerate(self.rig.instruments):
            if instrument.driver in ("ne1000", "reglo_icc", "teer"):
                self.serial_sims[instrument.name] = self._serial_sim(instrument).start()
                continue
            c = instrument.connection
            key = f"tcp:{c.host}:{c.port}" if c.kind == "tcp" else f"rtu:{c.port or c.usb_serial or c.usb_vid_pid}"
            buses.setdefault(key, (instrument, []))[1].append(self._modbus_device(instrument, index))
            self._modbus_of[instrument.name] = key
        for key, (first, devices) in buses.items():
            bus = SimModbusBus(devices, plan=self.plan, now_s=self.rig_time_s)
            c = first.connection
            server = (
                ModbusTcpSim(bus)
                if c.kind == "tcp"
                else ModbusRtuSim(bus, baudrate=c.baud or 19200, parity=c.parity, stopbits=c.stopbits or 2)
            )
            self.modbus_servers[key] = server.start()

    def _serial_sim(self, instrument: InstrumentSpec) -> PtyDevice:
        name, common = instrument.name, {"plan": self.plan, "now_s": self.rig_time_s}
        if instrument.driver == "ne1000":
            state = PumpState(diameter_mm=instrument.syringe_diameter_mm or 26.59)
            return NE1000Sim(
                name,
                address=instrument.connection.address or 0,
                state=state,
                on_dispense=self._dispenser(instrument),
                **common,
            )
        if instrument.driver == "reglo_icc":
            return RegloSim(name, on_dispense=self._dispenser(instrument), **common)
        return TeerSim(name, wells=tuple(instrument.wells), teer_ohm_cm2=self._teer_source(instrument), **common)

    def _dispenser(self, pump: InstrumentSpec) -> Callable[[float, float], None] | None:
        if not pump.feeds:
            return None
        chips = [self.chips[name] for name in pump.feeds]

        def on_dispense(volume_ml: float, rate_ml_min: float) -> None:
            now_s = self.rig_time_s()
            for chip in chips:
                if volume_ml > 0:
                    chip.dose(now_s, volume_ml * pump.drug_concentration_um, volume_ml)
                else:
                    chip.sample(now_s, -volume_ml)

        return on_dispense

    def _chip_of(self, instrument: str, measurement: str | None = None) -> SimChip | None:
        for channel in self.rig.channels:
            if channel.instrument == instrument and channel.chip and measurement in (None, channel.measurement):
                return self.chips[channel.chip]
        return None

    def _signal(self, instrument: InstrumentSpec, source: Callable[[float], float], salt: int) -> SimSignal:
        noise = self.scenario.noise_for(instrument.name)
        return SimSignal(source, noise.noise_sd, noise.drift_per_h, seed=self.scenario.seed * 1000 + salt)

    def _teer_source(self, instrument: InstrumentSpec) -> Callable[[str, float], float]:
        noise = self.scenario.noise_for(instrument.name)
        signals = {}
        for salt, well in enumerate(instrument.wells):
            chip = self._chip_of(instrument.name, f"teer.{well}")
            viability = (lambda t, c=chip: c.observables_at(t)["viability"]) if chip else (lambda t: 1.0)
            signals[well] = self._signal(instrument, lambda t, v=viability: noise.baseline_ohm_cm2 * v(t), salt)
        return lambda well, t_s: signals[well](t_s)

    def _modbus_device(self, instrument: InstrumentSpec, salt: int) -> SimModbusDevice:
        c, noise = instrument.connection, self.scenario.noise_for(instrument.name)
        unit_id, name = int(c.unit_id or 1), instrument.name
        if instrument.driver == "visiferm_do":
            chip = self._chip_of(name)
            factor = DO_SATURATION_MG_L_37C / 100.0 if instrument.do_unit == "mg/L" else 1.0
            oxygen = (lambda t: factor * chip.observables_at(t)["oxygen"]) if chip else (lambda t: factor * 100.0)
            return visiferm_do_sim(
                name, unit_id, self._signal(instrument, oxygen, salt), unit=instrument.do_unit, word_order=c.word_order
            )
        if instrument.driver == "ph_arc":
            ph = noise.values.get("pH", 7.4)
            return ph_arc_sim(name, unit_id, self._signal(instrument, lambda t: ph, salt), word_order=c.word_order)
        register_map = RegisterMap.from_dicts([point.model_dump() for point in instrument.registers])
        sources = {
            point.name: self._signal(instrument, _constant(_point_value(point, noise)), salt * 100 + i)
            for i, point in enumerate(register_map.points)
        }
        return RegisterMapSim(name, unit_id, register_map, sources)


def _constant(value: float) -> Callable[[float], float]:
    return lambda _t_s: value


def _point_value(point: Any, noise: SensorNoise) -> float:
    if point.name in noise.values:
        return noise.values[point.name]
    if point.quantity == "temperature":
        return 37.0
    return sum(point.plausible) / 2.0 if point.plausible else 0.0
