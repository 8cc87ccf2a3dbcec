"""The runner: interlock latency (condition met → safe-state command, wall ms) and `chiptwin demo` wall time.

    .venv/bin/python -m benchmarks.bench_runner      # → benchmarks/results/runner.json

Interlock: the simulated pressure reads 30 kPa against "pressure > 250 mbar for 10 s", at
600× the clock (poll period 60 s → 100 ms wall); the latency is the monitor's own measure
from the reading that completed the condition to the safe-state command. Target: one
poll period + 100 ms. The demo runs once, in-process (``protocols.demo.setup.run_demo``).
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from benchmarks.common import write_results
from protocols.demo.setup import run_demo
from tests.protocols.runner_helpers import Background, protocol_text, sim_runner, wait_until

RATE, POLL_S, TRIALS = 600.0, 60.0, 5
SCENARIO = "seed = 1\n[sensors.pressure]\nnoise_sd = 0.05\nvalues = { inlet_pressure = 30.0 }\n"
STEPS = '\n[[steps]]\nkind = "wait"\nduration = "40 h"\n'


def interlock_latency_ms() -> list[float]:
    out = []
    for _ in range(TRIALS):
        with tempfile.TemporaryDirectory() as tmp:
            text = protocol_text(STEPS, '"pressure > 250 mbar for 10 s -> safe_state, alarm"')
            with sim_runner(Path(tmp), text, SCENARIO, rate=RATE) as (runner, _sim):
                background = Background(runner)
                try:
                    if wait_until(lambda: runner.monitor.trips, 20.0):
                        out.append(runner.monitor.trips[0].latency_wall_s * 1000.0)
                finally:
                    runner.control.stop("aborted", "bench over")
                    background.result(10.0)
    return out


def demo() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        summary = run_demo(str(Path(tmp) / "demo.db"))
    return {
        "wall_time_s": round(summary["wall_time_s"], 1),
        "state": summary["state"],
        "rounds": summary["rounds"],
        "doses_executed": summary["doses_executed"],
        "readings_stored": summary["readings_stored"],
        "per_round": [
            {"round": r["round"], "median_abs_log_error": r["error"], "ci_width_ratio": r["ci_width"]}
            for r in summary["per_round"]
        ],
    }


def main() -> None:
    latencies = interlock_latency_ms()
    target_ms = POLL_S / RATE * 1000.0 + 100.0
    figures = {
        "interlock": {
            "trials_ms": [round(x, 2) for x in latencies],
            "median_ms": round(statistics.median(latencies), 2) if latencies else None,
            "target_ms": target_ms,
            "poll_period_wall_ms": POLL_S / RATE * 1000.0,
            "clock_rate": RATE,
        },
        "demo": demo(),
    }
    print(write_results("runner", figures).read_text())


if __name__ == "__main__":
    main()
