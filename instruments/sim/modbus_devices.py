"""Simulated Modbus devices (register images computed per request) and the faults they play.

A :class:`SimModbusBus` holds devices by unit id and turns one request PDU into one reply
PDU (or silence), consulting the FaultPlan for the addressed device at each request:
``timeout``/``dropout`` → no reply; ``modbus_exception`` → exception reply (param
``code``, default 4); ``word_order`` → 32-bit values sent in the other word order;
``garbled``/``crc_error``/``truncated`` → the framing layer corrupts the frame. Every
fault that fires is recorded in the plan log with its time. The wire servers
(TCP, RTU on a pty) live in ``instruments.sim.modbus_sim``.
"""

from __future__ import annotations

import random
import struct
import time
from dataclasses import dataclass, replace
from typing import Callable

from instruments.drivers.hamilton import (
    BLOCK_REGISTERS,
    PRIMARY_BLOCK_ADDRESS,
    TEMPERATURE_BLOCK_ADDRESS,
    UNIT_CODE_BY_LABEL,
    HamiltonBlock,
    encode_block,
)
from instruments.drivers.modbus_sensor import RegisterMap, RegisterPoint
from instruments.sim.faults import Fault, FaultPlan
from instruments.transport.modbus_codec import swapped

ValueSource = Callable[[float], float]
FRAME_FAULTS = ("garbled", "crc_error", "truncated")
SILENT_FAULTS = ("timeout", "dropout")


class SimSignal:
    """``value_source(now_s)`` plus linear drift and Gaussian noise (seeded, reproducible)."""

    def __init__(
        self, value_source: ValueSource, noise_sd: float = 0.0, drift_per_h: float = 0.0, seed: int = 0
    ) -> None:
        self.value_source, self.noise_sd, self.drift_per_h = value_source, noise_sd, drift_per_h
        self._rng = random.Random(seed)

    def __call__(self, now_s: float) -> float:
        noise = self._rng.gauss(0.0, self.noise_sd) if self.noise_sd else 0.0
        return self.value_source(now_s) + self.drift_per_h * now_s / 3600.0 + noise


def _constant(value: float) -> ValueSource:
    return lambda _now_s: value


class SimModbusDevice:
    """Base: a named device at a unit id; subclasses produce registers or an exception code."""

    def __init__(self, name: str, unit_id: int, word_order: str) -> None:
        self.name, self.unit_id, self.word_order = name, unit_id, word_order

    def registers(self, function: int, address: int, count: int, now_s: float, word_order: str) -> list[int] | int:
        """The registers asked for, or a Modbus exception code."""
        raise NotImplementedError


class HamiltonSim(SimModbusDevice):
    """VisiFerm DO / pH Arc: two 10-register blocks; any partial read → exception 2."""

    def __init__(
        self,
        name: str,
        unit_id: int,
        primary: ValueSource,
        *,
        primary_unit: str,
        limits: tuple[float, float],
        temperature: ValueSource = _constant(37.0),
        status: Callable[[float], int] = lambda _now_s: 0,
        word_order: str = "low_word_first",
        functions: tuple[int, ...] = (3, 4),
    ) -> None:
        super().__init__(name, unit_id, word_order)
        self.primary, self.temperature, self.status = primary, temperature, status
        self.primary_unit_code = UNIT_CODE_BY_LABEL[primary_unit]
        self.limits, self.functions = limits, functions

    def block(self, address: int, now_s: float) -> HamiltonBlock:
        if address == PRIMARY_BLOCK_ADDRESS:
            return HamiltonBlock(self.primary_unit_code, self.primary(now_s), self.status(now_s), *self.limits)
        return HamiltonBlock(0x04, self.temperature(now_s), self.status(now_s), -20.0, 130.0)

    def registers(self, function: int, address: int, count: int, now_s: float, word_order: str) -> list[int] | int:
        if function not in self.functions:
            return 1
        if address not in (PRIMARY_BLOCK_ADDRESS, TEMPERATURE_BLOCK_ADDRESS) or count != BLOCK_REGISTERS:
            return 2  # partial reads are refused
        return encode_block(self.block(address, now_s), word_order)


def visiferm_do_sim(
    name: str = "visiferm",
    unit_id: int = 1,
    value_source: ValueSource = _constant(100.0),
    *,
    unit: str = "%-sat",
    **options,
) -> HamiltonSim:
    """A VisiFerm DO (default unit %-air-saturation; limits 0–300 %-sat are *unconfirmed*)."""
    return HamiltonSim(name, unit_id, value_source, primary_unit=unit, limits=(0.0, 300.0), **options)


def ph_arc_sim(
    name: str = "ph_arc", unit_id: int = 2, value_source: ValueSource = _constant(7.4), **options
) -> HamiltonSim:
    """A pH Arc (limits 0–14)."""
    return HamiltonSim(name, unit_id, value_source, primary_unit="pH", limits=(0.0, 14.0), **options)


class RegisterMapSim(SimModbusDevice):
    """A generic device serving each point of a RegisterMap from its own value source."""

    def __init__(self, name: str, unit_id: int, register_map: RegisterMap, sources: dict[str, ValueSource]) -> None:
        super().__init__(name, unit_id, "high_word_first")
        missing = [p.name for p in register_map.points if p.name not in sources]
        if missing:
            raise ValueError(f"{name}: no value source for points {missing}")
        self.register_map, self.sources = register_map, sources

    def registers(self, function: int, address: int, count: int, now_s: float, word_order: str) -> list[int] | int:
        image: dict[int, int] = {}
        for point in self.register_map.points:
            if point.function == function:
                order = swapped(point.word_order) if word_order != self.word_order else point.word_order
                value = self.sources[point.name](now_s)
                image.update(zip(point.registers, _point_registers(point, value, order)))
        wanted = range(address, address + count)
        if not all(r in image for r in wanted):
            return 2
        return [image[r] for r in wanted]


def _point_registers(point: RegisterPoint, value: float, word_order: str) -> list[int]:
    return replace(point, word_order=word_order).registers_for(value)


@dataclass(frozen=True)
class SimReply:
    pdu: bytes | None  # None = stay silent
    corrupt: str | None = None  # one of FRAME_FAULTS, applied by the framing layer


class SimModbusBus:
    """Devices by unit id + the fault plan + the clock: request PDU in, reply PDU out."""

    def __init__(
        self, devices: list[SimModbusDevice], plan: FaultPlan | None = None, now_s: Callable[[], float] | None = None
    ) -> None:
        self.devices = {device.unit_id: device for device in devices}
        self.plan = plan or FaultPlan()
        start = time.monotonic()
        self.now_s = now_s or (lambda: time.monotonic() - start)
        self.requests_served = 0

    def reply(self, unit_id: int, pdu: bytes) -> SimReply:
        device = self.devices.get(unit_id)
        if device is None or len(pdu) < 1:
            return SimReply(None)  # nobody at that address: silence, as on a real line
        now = self.now_s()
        faults = self.plan.take(device.name, now)
        for fault in faults:
            if fault.kind in SILENT_FAULTS:
                return self._fired(fault, now, "no reply", SimReply(None))
        word_order, corrupt = device.word_order, None
        for fault in faults:
            if fault.kind == "modbus_exception":
                code = int(fault.params.get("code", 4))
                return self._fired(fault, now, f"exception {code}", SimReply(bytes([pdu[0] | 0x80, code])))
            if fault.kind == "word_order":
                word_order = swapped(device.word_order)
                self.plan.record(fault, now, f"sent {word_order}")
            elif fault.kind in FRAME_FAULTS:
                corrupt = fault.kind
                self.plan.record(fault, now, fault.kind)
        self.requests_served += 1
        return SimReply(self._answer(device, pdu, now, word_order), corrupt)

    def _fired(self, fault: Fault, now: float, detail: str, reply: SimReply) -> SimReply:
        self.plan.record(fault, now, detail)
        return reply

    @staticmethod
    def _answer(device: SimModbusDevice, pdu: bytes, now: float, word_order: str) -> bytes:
        function = pdu[0]
        if function not in (3, 4) or len(pdu) != 5:
            return bytes([function | 0x80, 1])
        address, count = struct.unpack(">HH", pdu[1:5])
        if not 1 <= count <= 125:
            return bytes([function | 0x80, 3])
        result = device.registers(function, address, count, now, word_order)
        if isinstance(result, int):
            return bytes([function | 0x80, result])
        return bytes([function, 2 * count]) + b"".join(struct.pack(">H", w & 0xFFFF) for w in result)
