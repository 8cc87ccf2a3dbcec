"""Acquisition benchmarks: RTU line-rate limit, and 16 chips × 5 channels at 60× with zero loss.

    .venv/bin/python -m benchmarks.bench_acquisition [--rtu-seconds 6] [--sim-minutes 10]

(a) A 19,200-baud 8N2 Modbus RTU line (ModbusRtuSim on a pty, enforce_timing=True: each
    reply is released when its last byte would arrive on a real line) with three Hamilton
    VisiFerm DO sensors polled back to back (period 0). A VisiFerm poll reads two
    10-register blocks = two transactions of request 8 + gap 3.5 + reply 25 + gap 3.5 =
    40 characters of 11 bits. Target: achieved ≥ 90 % of that limit. ``early_requests``
    counts requests the client sent before 3.5 chars of silence (must be 0).
(b) 16 chips × 5 channels at 1 Hz on a 60× clock for 10 simulated minutes (10 s real):
    expected vs received readings per channel (slots 0…599 must all arrive, exactly
    once), CPU time of the poller process, wall time. Two layouts:
    "chip devices" — each chip one register-map device whose 5 points are one contiguous
    span, so one request serves 5 channels (960 requests/s);
    "channel devices" — each channel its own device (4,800 requests/s), spread over 4 TCP
    gateways. Both layouts use 4 TCP gateways (one connection and one worker each): at 60×
    a 1 s period is 16.7 ms real, and one connection polling 16 devices in turn leaves
    too little slack for the scheduling jitter of a shared 2-core host.
    The simulators run in a child process so the CPU figure is the poller's own; the
    child's CPU is reported separately.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import threading
import time

from rich.console import Console
from rich.table import Table

from benchmarks.common import write_results
from instruments.acquisition.poller import Channel, Poller, Reading, check_sequences
from instruments.clock import AcceleratedClock, RealClock
from instruments.connection import RetryPolicy
from instruments.drivers.hamilton import VisiFermDO
from instruments.drivers.modbus_sensor import ModbusRegisterSensor, RegisterMap, RegisterPoint
from instruments.sim.modbus_devices import RegisterMapSim, SimModbusBus, visiferm_do_sim
from instruments.sim.modbus_sim import ModbusRtuSim, ModbusTcpSim
from instruments.transport.modbus_codec import rtu_bits_per_char
from instruments.transport.modbus_link import ModbusBus, RtuLine, TcpEndpoint

BAUD = 19_200
GATEWAYS = 4  # TCP gateways (one connection, one poll worker each); chips spread round-robin
POLICY = RetryPolicy(timeout_s=0.5, retries=1)
CHIP_POINTS = [
    ("o2", "oxygen_air_saturation", "percent", 0.1),
    ("ph", "pH", "dimensionless", 0.001),
    ("temp", "temperature", "degC", 0.01),
    ("pressure", "pressure", "kPa", 0.01),
    ("flow", "flow_rate", "uL/min", 0.1),
]


class CountingSink:
    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self._lock = threading.Lock()

    def __call__(self, batch: list[Reading]) -> None:
        with self._lock:
            self.readings.extend(batch)


# --- (a) line rate -------------------------------------------------------------------------


def rtu_line_limit(baudrate: int = BAUD, registers: int = 10, parity: str = "N", stopbits: int = 2) -> dict:
    """Transactions/s a line can carry: (8 + 3.5 + (5 + 2N) + 3.5) characters each."""
    bits = rtu_bits_per_char(parity, stopbits)
    chars = 8 + 3.5 + (5 + 2 * registers) + 3.5
    per_s = baudrate / bits / chars
    return {"bits_per_char": bits, "chars_per_transaction": chars, "transactions_per_s": per_s}


def bench_line_rate(seconds_real: float, n_sensors: int = 3) -> dict:
    limit = rtu_line_limit()
    sims = [visiferm_do_sim(f"do{i}", i, lambda t: 80.0) for i in range(1, n_sensors + 1)]
    sink = CountingSink()
    with (
        ModbusRtuSim(SimModbusBus(sims), baudrate=BAUD, enforce_timing=True) as sim,
        ModbusBus(RtuLine(sim.port, baudrate=BAUD), POLICY, name="rs485") as bus,
    ):
        sensors = [VisiFermDO(f"do{i}", bus.device(i, f"do{i}")) for i in range(1, n_sensors + 1)]
        for sensor in sensors:
            sensor.read()  # open the line before timing
        channels = [Channel(f"do{i}", s, "oxygen_air_saturation", "percent", 0.0) for i, s in enumerate(sensors, 1)]
        with Poller(channels, sink, RealClock(), batch_readings=1000, batch_interval_s=0.5) as poller:
            time.sleep(0.5)  # settle
            polls_before, started = poller.stats().produced, time.perf_counter()
            time.sleep(seconds_real)
            polls, window_s = poller.stats().produced - polls_before, time.perf_counter() - started
        stats = poller.stats()
        early = sim.early_requests  # requests that broke the 3.5-char silence (charged to the line anyway)
    errors = sum(c.errors for c in stats.channels.values())
    polls_per_s = polls / window_s
    achieved_tx_per_s = 2 * polls_per_s  # two block reads per VisiFerm poll
    return {
        "baud": BAUD,
        "framing": "8N2",
        "sensors": n_sensors,
        "window_s": round(window_s, 2),
        "line_limit_transactions_per_s": round(limit["transactions_per_s"], 2),
        "line_limit_sensor_polls_per_s": round(limit["transactions_per_s"] / 2, 2),
        "achieved_transactions_per_s": round(achieved_tx_per_s, 2),
        "achieved_sensor_polls_per_s": round(polls_per_s, 2),
        "ratio": round(achieved_tx_per_s / limit["transactions_per_s"], 3),
        "errors": errors,
        "early_requests": early,
        "chars_per_transaction": limit["chars_per_transaction"],
        "bits_per_char": limit["bits_per_char"],
    }


# --- (b) 16 chips × 5 channels ----------------------------------------------------------------


def _chip_map(n_points: int, first: int = 0) -> RegisterMap:
    return RegisterMap(
        [
            RegisterPoint(name, quantity, i, "int16", unit, scale=scale)
            for i, (name, quantity, unit, scale) in enumerate(CHIP_POINTS[first : first + n_points])
        ]
    )


def _layout(mode: str, chips: int) -> list[list[tuple[int, int]]]:
    """Per gateway: (unit id, first point) of each device; chip devices carry all 5 points."""
    if mode == "chip":
        devices = [(chip + 1, 0) for chip in range(chips)]
    else:
        devices = [(chip * 5 + p + 1, p) for chip in range(chips) for p in range(5)]
    return [devices[g::GATEWAYS] for g in range(GATEWAYS)]


def _serve(mode: str, chips: int, connection) -> None:  # noqa: ANN001 - a multiprocessing Connection
    """Child process: one ModbusTcpSim per gateway; sends the ports, serves until told to stop."""
    n_points = 5 if mode == "chip" else 1
    servers = []
    for gateway in _layout(mode, chips):
        devices = []
        for unit, first in gateway:
            register_map = _chip_map(n_points, first)
            sources = {p.name: (lambda t, u=unit: 10.0 + (u % 7)) for p in register_map.points}
            devices.append(RegisterMapSim(f"dev{unit}", unit, register_map, sources))
        servers.append(ModbusTcpSim(SimModbusBus(devices)).start())
    connection.send([server.port for server in servers])
    connection.recv()
    for server in servers:
        server.stop()


def _channels(mode: str, chips: int, buses: list[ModbusBus]) -> list[Channel]:
    n_points = 5 if mode == "chip" else 1
    channels = []
    for bus, gateway in zip(buses, _layout(mode, chips)):
        for unit, first in gateway:
            register_map = _chip_map(n_points, first)
            sensor = ModbusRegisterSensor(f"dev{unit}", bus.device(unit, f"dev{unit}"), register_map)
            chip = (unit - 1) // (1 if mode == "chip" else 5) + 1
            channels += [
                Channel(f"chip{chip:02d}/{p.name}", sensor, p.quantity, p.unit, 1.0, (0.0, 100.0))
                for p in register_map.points
            ]
    return channels


def bench_many_channels(mode: str, chips: int = 16, sim_minutes: float = 10.0, rate: float = 60.0) -> dict:
    children_before = _children_cpu_s()
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    server = context.Process(target=_serve, args=(mode, chips, child), daemon=True)
    server.start()
    ports = parent.recv()
    buses = [ModbusBus(TcpEndpoint("127.0.0.1", port), POLICY, name=f"gateway{i}") for i, port in enumerate(ports)]
    try:
        channels = _channels(mode, chips, buses)
        for sensor in {id(c.sensor): c.sensor for c in channels}.values():
            sensor.read()  # connect before the clock starts
        result = _acquire(channels, sim_minutes * 60.0, rate)
    finally:
        for bus in buses:
            bus.close()
        parent.send("stop")
        server.join(10)
    result.update(
        mode=mode,
        chips=chips,
        gateways=len(ports),
        channels=len(channels),
        clock_rate=rate,
        requests_per_real_s=round((chips if mode == "chip" else chips * 5) * rate, 1),
        simulator_process_cpu_s=round(_children_cpu_s() - children_before, 2),
    )
    return result


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _acquire(channels: list[Channel], sim_s: float, rate: float) -> dict:
    sink = CountingSink()
    t0 = 1.8e9
    clock = AcceleratedClock.starting_now(rate, t0)
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    with Poller(channels, sink, clock, batch_readings=2000, batch_interval_s=0.5, start_utc_s=t0) as poller:
        # one period past the end, so that every (staggered) slot < sim_s was due a whole period before stop
        time.sleep(max(0.0, (t0 + sim_s + 1.0 - clock.now_s()) / rate))
    wall_s, cpu_s = time.perf_counter() - wall_before, time.process_time() - cpu_before
    stats = poller.stats()
    slots = int(sim_s)  # slots 0 … sim_s-1 at 1 Hz
    received = {c.name: sum(1 for r in sink.readings if r.channel == c.name and r.slot < slots) for c in channels}
    report = check_sequences(sink.readings, stats)
    return {
        "sim_seconds": sim_s,
        "expected_per_channel": slots,
        "expected_total": slots * len(channels),
        "received_total": sum(received.values()),
        "lost": slots * len(channels) - sum(received.values()),
        "min_received_per_channel": min(received.values()),
        "exactly_once": report.ok,
        "missed_slots": sum(c.missed_slots for c in stats.channels.values()),
        "errors": sum(c.errors for c in stats.channels.values()),
        "wall_s": round(wall_s, 2),
        "poller_cpu_s": round(cpu_s, 2),
        "poller_cpu_percent_of_one_core": round(100 * cpu_s / wall_s, 1),
        "readings_per_real_s": round(stats.produced / wall_s, 1),
        "batches": stats.sink.batches,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtu-seconds", type=float, default=6.0)
    parser.add_argument("--sim-minutes", type=float, default=10.0)
    args = parser.parse_args()
    line = bench_line_rate(args.rtu_seconds)
    runs = [bench_many_channels(mode, sim_minutes=args.sim_minutes) for mode in ("chip", "channel")]
    console = Console(width=150)
    table = Table(title="RTU line rate (19,200 baud 8N2, Hamilton 10-register blocks)")
    for column in ("limit tx/s", "achieved tx/s", "ratio", "target", "errors"):
        table.add_column(column, justify="right")
    table.add_row(
        str(line["line_limit_transactions_per_s"]),
        str(line["achieved_transactions_per_s"]),
        f"{line['ratio']:.1%}",
        "≥ 90 %",
        str(line["errors"]),
    )
    console.print(table)
    table = Table(title="16 chips × 5 channels at 1 Hz, 60× clock")
    for column in (
        "layout",
        "requests/s",
        "expected",
        "received",
        "lost",
        "missed",
        "exactly once",
        "wall s",
        "poller CPU s",
        "CPU %",
    ):
        table.add_column(column, justify="right")
    for run in runs:
        table.add_row(
            f"{run['mode']} devices, {run['gateways']} gateway(s)",
            str(run["requests_per_real_s"]),
            str(run["expected_total"]),
            str(run["received_total"]),
            str(run["lost"]),
            str(run["missed_slots"]),
            str(run["exactly_once"]),
            str(run["wall_s"]),
            str(run["poller_cpu_s"]),
            str(run["poller_cpu_percent_of_one_core"]),
        )
    console.print(table)
    path = write_results(
        "acquisition",
        {
            "host_load_average_1min": round(os.getloadavg()[0], 2),
            "rtu_line_rate": line,
            "chips_16x5": {run["mode"]: run for run in runs},
        },
    )
    console.print(f"written {path}")


if __name__ == "__main__":
    main()
