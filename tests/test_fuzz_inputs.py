"""Standing fuzz suite (issue #15): generated protocol, rig, scenario, patient, dataset, design-space
and trial files through the real CLI. Every file is either accepted (and usable) or refused with one line
`error: …` and exit 2 — never a traceback, never a hang (each case runs under a time limit).

Files are a valid base document with up to three mutations (a value replaced by something
nasty — NaN, ±inf, huge, negative, a boolean, a list, "200 kg", "9**9**9 mL" —, a key deleted,
an unknown key added), serialised with tomli_w, then sometimes corrupted at the byte level
(random bytes inserted, the text truncated, non-UTF-8). The counts per file type (tried /
refused / accepted) are printed at the end of the module (`pytest -s`) and stored in the
pytest cache: `pytest --cache-show 'chiptwin/fuzz/*'`. The whole module stays under a minute;
`CHIPTWIN_FUZZ_LONG=1` runs ten times as many cases. A refusal of a TOML file that decodes is
expected to name its line ("file line N: …"); those that do are counted as "with line".
A few cases go through a real subprocess to prove exit 2 and no traceback end to end.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import tomllib
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from calibration.io.record import Estimate, FitRecord
from tests.instruments.test_rig_file import BASE as RIG_BASE
from ui.cli.app import app

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_RIG = REPO / "examples" / "rigs" / "liver4.toml"
SCENARIO_BASE = tomllib.loads((REPO / "examples" / "scenarios" / "liver4_truth.toml").read_text())
PATIENT_BASE = {
    **tomllib.loads((REPO / "examples" / "patients" / "p001.toml").read_text()),
    "abundance": {"CYP3A4": 95.0},
    "comedication": [{"drug": "ketoconazole", "unbound_concentration": "0.02 uM"}],
}
SPACE_BASE = {
    "observables": ["drug_medium"],
    "doses": {"levels_um": [1, 10]},
    "schedules": {"early": [0.5, 1, 2]},
    "samples": {"volumes_ml": [0.02]},
    "chips": {"free": ["chip-3", "chip-4"], "removed_ml": {"chip-4": 0.05}},
    "constraints": {"max_concentration_um": 200, "max_volume_removed_ml": 0.1},
    "error": {"drug_medium": {"prop_cv": 0.15}},
}
PROTOCOL_BASE = tomllib.loads((REPO / "examples" / "protocols" / "overnight_dosing.toml").read_text())
TRIAL_BASE = tomllib.loads((REPO / "examples" / "trials" / "procova_chip_study.toml").read_text())
TRIAL_BASE["simulation"]["n_trials"] = 200  # each accepted case runs the trial: keep it quick
DATASET_COLUMNS = ("ID", "TIME", "AMT", "EVID", "CMT", "RATE", "II", "ADDL", "SS", "DV", "MDV", "WT")
CASE_TIME_LIMIT_S = 20  # one file through the CLI; far above the slowest accepted case (~1 s)
LONG = os.environ.get("CHIPTWIN_FUZZ_LONG") == "1"
EXAMPLES = 200 if LONG else 20
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)

runner = CliRunner()
COUNTS: dict[str, Counter] = {}
LAST_ERROR = ""  # the last refusal's first line (scripts/fuzz_counts.py shows those without a line)


# -- strategies ------------------------------------------------------------------------------------
NASTY = st.one_of(
    st.sampled_from(
        [
            float("nan"),
            float("inf"),
            float("-inf"),
            -1,
            0,
            -0.0,
            1e300,
            -1e300,
            99999,
            2**62,
            True,
            False,
            "",
            "???",
            "nan",
            "200 kg",
            "0.1 kg",
            "9**9**9 mL",
            "-5 uM",
            "1e999 mL",
            "1 mL/",
            "\u00e9\u00e9",
            [1, 2],
            [],
            {"x": 1},
            {},
            [float("nan")],
            ["chip1", "chip1"],
            "S",
            "X",
            4,
            99,
        ]
    ),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.text(max_size=12),
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key/index path of a TOML document, tables and leaves."""
    found = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        found.append(prefix + (key,))
        found += _paths(value, prefix + (key,))
    return found


def _parent(doc: Any, path: tuple) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


@st.composite
def mutated(draw, base: dict) -> dict:
    doc = copy.deepcopy(base)
    for _ in range(draw(st.sampled_from([0, 1, 1, 2, 3]))):  # 0: the base itself, so some files are valid
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _parent(doc, path), path[-1]
        action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add"]))
        value = copy.deepcopy(draw(NASTY))  # sampled lists/tables are shared between examples
        if action == "replace":
            parent[key] = value
        elif action == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "Name", "limits", "unit"]))] = value
    return doc


@st.composite
def corrupted(draw, text: str) -> bytes:
    """The text, or the text broken at the byte level."""
    data = text.encode("utf-8")
    how = draw(st.sampled_from(["none"] * 6 + ["insert", "truncate", "latin1", "empty"]))
    at = draw(st.integers(0, len(data)))
    if how == "insert":
        return data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at:]
    if how == "truncate":
        return data[:at]
    if how == "latin1":
        return text.replace("a", "\u00e4", 1).encode("latin-1", "replace")
    return b"" if how == "empty" else data


@st.composite
def toml_file(draw, base: dict) -> bytes:
    doc = draw(mutated(base))
    try:
        text = tomli_w.dumps(doc)
    except (TypeError, ValueError):  # a value TOML cannot hold: fall back to the base
        text = tomli_w.dumps(base)
    return draw(corrupted(text))


@st.composite
def dataset_file(draw) -> bytes:
    columns = draw(st.lists(st.sampled_from(DATASET_COLUMNS), min_size=1, max_size=8))
    if draw(st.booleans()):
        columns = ["ID", "TIME", *columns]
    cell = st.sampled_from(["", ".", "0", "1", "2", "-1", "nan", "inf", "1e9", "abc", "24", "100", "0.5", "3", "1e999"])
    rows = draw(st.lists(st.lists(cell, min_size=len(columns), max_size=len(columns)), min_size=0, max_size=6))
    text = ",".join(columns) + "\n" + "".join(",".join(row) + "\n" for row in rows)
    if draw(st.booleans()):  # a sensible dose + observation, so some datasets are accepted
        text = "ID,TIME,AMT,EVID,CMT,II,ADDL,DV,MDV\n1,0,100,1,1,0,0,.,1\n1,1,0,0,1,0,0,5,0\n"
        text = text.replace(draw(st.sampled_from(["100", ",0,0,", "5,0", "1,1,0"])), draw(cell), 1)
    return draw(corrupted(text))


# -- running one case --------------------------------------------------------------------------------
LINE = re.compile(r"\b(line|row) \d+")  # "rig.toml line 7: …", "line 3: …" (datasets), "row 2"


# file types whose every refusal names a line, unless the problem is the whole file
LINED = {"patient", "design space", "trial", "rig", "scenario"}
WHOLE_FILE = re.compile(
    r"is empty|directory|NUL bytes|larger than|too large|not a regular file|does not exist|cannot read", re.I
)


class Hung(Exception):
    """A case ran past CASE_TIME_LIMIT_S."""


@contextmanager
def time_limit(seconds: int):
    def expire(*_):
        raise Hung(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_case(kind: str, args: list[str], accepted: Callable[[Any], bool], per_problem: bool = False) -> None:
    """Invoke the CLI; assert accepted-or-one-line-refusal; count the outcome.

    ``per_problem``: `protocol check` prints one line per problem it finds, each `error: …`.
    """
    with time_limit(CASE_TIME_LIMIT_S):
        result = runner.invoke(app, args)
    counts = COUNTS.setdefault(kind, Counter())
    counts["tried"] += 1
    assert not isinstance(result.exception, Hung), f"{kind}: hung: {args}"
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{kind}: escaped {type(result.exception).__name__}: {result.exception!r}\n{result.output}"
    )
    assert "Traceback" not in result.output
    if accepted(result):
        counts["accepted"] += 1
        return
    assert result.exit_code == 2, f"{kind}: exit {result.exit_code}\n{result.output}"
    lines = result.stderr.strip().splitlines()
    one = len(lines) == 1 or (per_problem and 1 <= len(lines) <= 20)
    assert one and all(line.startswith("error: ") for line in lines), f"{kind}: not one line:\n{result.stderr}"
    counts["refused"] += 1
    global LAST_ERROR
    LAST_ERROR = lines[0]
    if LINE.search(lines[0]):
        counts["with line"] += 1
    elif kind in LINED and not WHOLE_FILE.search(lines[0]):
        raise AssertionError(f"{kind}: the refusal names no line: {lines[0]}")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, request) -> Path:
    path = tmp_path_factory.mktemp("fuzz")
    (path / "endpoints.json").write_text(json.dumps({"rig": "none", "instruments": {}}))
    theta = {
        n: Estimate(**{"estimate": v, "se": 0.5 * v, "ci95": [v / 2.7, v * 2.7], "rse_percent": 50.0})
        for n, v in {"vmax": 2.0, "km": 10.0}.items()
    }
    record = FitRecord(
        "liver_chip",
        "1.0.0",
        "pooled",
        True,
        10.0,
        8,
        2,
        3,
        theta,
        {"drug_medium.prop_cv": 0.15},
        correlation={"names": ["vmax", "km"], "matrix": [[1.0, 0.0], [0.0, 1.0]]},
        data_selection={"fixed": {"ps": 0.5}},
    )
    (path / "fit.json").write_text(record.to_json())
    yield path
    summary = {kind: dict(counts) for kind, counts in sorted(COUNTS.items())}
    request.config.cache.set("chiptwin/fuzz/counts", summary)
    print("\nfuzz counts (tried / refused / refused with a line / accepted):")
    for kind, counts in summary.items():
        numbers = (counts.get(k, 0) for k in ("tried", "refused", "with line", "accepted"))
        print(f"  {kind:13s} " + " / ".join(f"{n:4d}" for n in numbers))


def _write(workdir: Path, name: str, content: bytes) -> Path:
    path = workdir / name
    path.write_bytes(content)
    return path


# -- the suite -------------------------------------------------------------------------------------------
@SETTINGS
@given(content=toml_file(tomllib.loads(RIG_BASE)))
def test_rig_files(workdir: Path, content: bytes) -> None:
    path = _write(workdir, "rig.toml", content)

    def accepted(result) -> bool:  # loaded, then stopped at the (empty) endpoints file or had no devices
        return result.exit_code == 0 or "endpoints file has no entry" in result.stderr

    run_case("rig", ["devices", "check", "--rig", str(path), "--endpoints", str(workdir / "endpoints.json")], accepted)


@SETTINGS
@given(content=toml_file(SCENARIO_BASE))
def test_scenario_files(workdir: Path, content: bytes) -> None:
    path = _write(workdir, "scenario.toml", content)
    run_case(
        "scenario",
        [
            "sim-rig",
            "--rig",
            str(EXAMPLE_RIG),
            "--scenario",
            str(path),
            "--duration-s",
            "0",
            "--endpoints-file",
            str(workdir / "ep-out.json"),
        ],
        lambda r: r.exit_code == 0,
    )


@SETTINGS
@given(content=toml_file(PATIENT_BASE))
def test_patient_files(workdir: Path, content: bytes) -> None:
    path = _write(workdir, "patient.toml", content)
    run_case(
        "patient",
        ["predict", "--patient", str(path), "--drug", "midazolam", "--regimen", "7.5 mg q24h x7 oral", "--json"],
        lambda r: r.exit_code == 0,
    )


@SETTINGS
@given(content=dataset_file())
def test_dataset_files(workdir: Path, content: bytes) -> None:
    path = _write(workdir, "data.csv", content)
    run_case(
        "dataset", ["simulate", str(path), "-m", "iv_1cpt", "-p", "cl=1.1", "-p", "v=20"], lambda r: r.exit_code == 0
    )


@settings(SETTINGS, max_examples=EXAMPLES * 3 // 4)
@given(content=toml_file(SPACE_BASE))
def test_design_space_files(workdir: Path, content: bytes) -> None:
    path = _write(workdir, "space.toml", content)
    run_case(
        "design space",
        ["design", str(workdir / "fit.json"), "--space", str(path), "--draws", "1", "--top", "1", "--json"],
        lambda r: r.exit_code == 0,
    )


@settings(SETTINGS, max_examples=EXAMPLES * 3 // 4)
@given(content=toml_file(PROTOCOL_BASE))
def test_protocol_files(workdir: Path, content: bytes) -> None:
    path = _write(workdir, "protocol.toml", content)
    args = ["protocol", "check", str(path), "--rig", str(EXAMPLE_RIG)]
    run_case("protocol", args, lambda r: r.exit_code == 0, per_problem=True)


@settings(SETTINGS, max_examples=EXAMPLES * 3 // 4)
@given(content=toml_file(TRIAL_BASE))
def test_trial_files(workdir: Path, content: bytes) -> None:
    path = _write(workdir, "trial.toml", content)
    run_case("trial", ["trial", "simulate", str(path), "--json"], lambda r: r.exit_code == 0)


def test_directories_are_refused_for_every_file_type(workdir: Path) -> None:
    for kind, args in {
        "rig": ["devices", "check", "--rig", str(workdir)],
        "scenario": ["sim-rig", "--rig", str(EXAMPLE_RIG), "--scenario", str(workdir)],
        "patient": ["predict", "--patient", str(workdir), "--drug", "midazolam", "--regimen", "1 mg q24h x1 iv"],
        "dataset": ["simulate", str(workdir), "-m", "iv_1cpt"],
        "design space": ["design", str(workdir / "fit.json"), "--space", str(workdir)],
        "protocol": ["protocol", "check", str(workdir), "--rig", str(EXAMPLE_RIG)],
        "trial": ["trial", "simulate", str(workdir)],
    }.items():
        run_case(kind, args, lambda r: False)


# -- end to end: a real process, its exit status and its stderr ---------------------------------------------
def test_through_a_subprocess_exit_2_and_no_traceback(tmp_path: Path) -> None:
    rig = tmp_path / "rig.toml"
    rig.write_bytes(b'[rig]\nname = "b\xe9nch"\n')
    data = tmp_path / "addl.csv"
    data.write_text("ID,TIME,AMT,EVID,II,ADDL,DV,MDV\n1,0,100,1,24,1e9,.,1\n1,1,0,0,0,0,5,0\n")
    commands = {
        "non-UTF-8 rig": ["devices", "check", "--rig", str(rig)],
        "ADDL 1e9": ["simulate", str(data), "-m", "iv_1cpt", "-p", "cl=1", "-p", "v=10"],
    }
    entry = [sys.executable, "-c", "from ui.cli.app import main; main()"]
    processes = {
        name: subprocess.Popen(entry + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        for name, args in commands.items()
    }
    for name, process in processes.items():
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 2, (name, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in stderr, (name, stderr)


def test_a_protocol_without_chips_is_refused_with_a_reason(tmp_path: Path) -> None:
    # found by this suite: [protocol] without chips was exit 2 with nothing printed
    base = (REPO / "examples" / "protocols" / "overnight_dosing.toml").read_text()
    path = tmp_path / "p.toml"
    path.write_text(base.replace('chips = ["chip1", "chip2", "chip3", "chip4"]\n', "", 1))
    result = runner.invoke(app, ["protocol", "check", str(path), "--rig", str(EXAMPLE_RIG)])
    assert result.exit_code == 2
    assert (
        result.stderr.strip() == "error: p.toml line 5: [protocol] chips missing; fix: add them (see docs/protocols.md)"
    )
