"""Fuzz counts per file type (issue #15): N generated files each through the real CLI.

    .venv/bin/python scripts/fuzz_counts.py --n 200 [--seed 1] [--show 5]

Files come from the hypothesis strategies of tests/test_fuzz_inputs.py (a valid base file
with up to three mutations, sometimes corrupted at the byte level). Each goes through the
`chiptwin` app in this process (typer's CliRunner: the same commands, options and error
handling as the installed script, without a Python start-up per file). Prints per type:
tried / refused / refused with a line number / accepted / escaped (a traceback or a hang:
should be 0), and with --show, examples of refusals that name no line.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import warnings
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100, help="files per type (default 100)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (same seed, same files)")
    parser.add_argument("--show", type=int, default=0, help="print this many refusals without a line, per type")
    options = parser.parse_args()

    from hypothesis.errors import NonInteractiveExampleWarning

    warnings.simplefilter("ignore", NonInteractiveExampleWarning)
    import tomllib

    import tests.test_fuzz_inputs as fuzz

    random.seed(options.seed)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        _fixtures(fuzz, workdir)
        kinds = _kinds(fuzz, tomllib, workdir)
        print(f"{'file type':13s} {'tried':>6s} {'refused':>8s} {'w/ line':>8s} {'accepted':>9s} {'escaped':>8s}")
        for kind, (strategy, name, args, accepted, per_problem) in kinds.items():
            counts, unlined = Counter(), []
            for _ in range(options.n):
                path = workdir / name
                path.write_bytes(strategy.example())
                fuzz.COUNTS.clear()
                try:
                    fuzz.run_case(kind, args(path), accepted, per_problem)
                except AssertionError as exc:
                    counts["tried"] += 1
                    counts["escaped"] += 1
                    print(f"  {kind}: {str(exc).splitlines()[0]}", file=sys.stderr)
                    continue
                counts.update(fuzz.COUNTS[kind])
                if fuzz.COUNTS[kind]["refused"] and not fuzz.COUNTS[kind]["with line"]:
                    unlined.append(fuzz.LAST_ERROR)
            print(
                f"{kind:13s} {counts['tried']:6d} {counts['refused']:8d} {counts['with line']:8d} "
                f"{counts['accepted']:9d} {counts['escaped']:8d}"
            )
            for message in unlined[: options.show]:
                print(f"    no line: {message}")
    return 0


def _fixtures(fuzz, workdir: Path) -> None:
    """The fit record and endpoints file the design and rig commands need (as the test fixture makes)."""
    generator = fuzz.workdir.__wrapped__(_Factory(workdir), _Request())
    next(generator)


class _Factory:
    def __init__(self, path: Path) -> None:
        self.path = path

    def mktemp(self, _name: str) -> Path:
        return self.path


class _Request:
    config = None


def _kinds(fuzz, tomllib, workdir: Path) -> dict:
    ok = lambda r: r.exit_code == 0  # noqa: E731
    rig_ok = lambda r: r.exit_code == 0 or "endpoints file has no entry" in r.stderr  # noqa: E731
    endpoints = str(workdir / "endpoints.json")
    rig = str(fuzz.EXAMPLE_RIG)
    return {
        "protocol": (
            fuzz.toml_file(fuzz.PROTOCOL_BASE),
            "protocol.toml",
            lambda p: ["protocol", "check", str(p), "--rig", rig],
            ok,
            True,
        ),
        "rig": (
            fuzz.toml_file(tomllib.loads(fuzz.RIG_BASE)),
            "rig.toml",
            lambda p: ["devices", "check", "--rig", str(p), "--endpoints", endpoints],
            rig_ok,
            False,
        ),
        "scenario": (
            fuzz.toml_file(fuzz.SCENARIO_BASE),
            "scenario.toml",
            lambda p: [
                "sim-rig",
                "--rig",
                rig,
                "--scenario",
                str(p),
                "--duration-s",
                "0",
                "--endpoints-file",
                str(workdir / "ep-out.json"),
            ],
            ok,
            False,
        ),
        "patient": (
            fuzz.toml_file(fuzz.PATIENT_BASE),
            "patient.toml",
            lambda p: ["predict", "--patient", str(p), "--drug", "midazolam", "--regimen", "7.5 mg q24h x7 oral"],
            ok,
            False,
        ),
        "dataset": (
            fuzz.dataset_file(),
            "data.csv",
            lambda p: ["simulate", str(p), "-m", "iv_1cpt", "-p", "cl=1.1", "-p", "v=20"],
            ok,
            False,
        ),
        "design space": (
            fuzz.toml_file(fuzz.SPACE_BASE),
            "space.toml",
            lambda p: ["design", str(workdir / "fit.json"), "--space", str(p), "--draws", "1", "--top", "1"],
            ok,
            False,
        ),
        "trial": (
            fuzz.toml_file(fuzz.TRIAL_BASE),
            "trial.toml",
            lambda p: ["trial", "simulate", str(p), "--json"],
            ok,
            False,
        ),
    }


if __name__ == "__main__":
    sys.exit(main())
