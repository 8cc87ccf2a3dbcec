"""Generated trial files through the real CLI: accepted (and simulated) or refused in one line, exit 2."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ui.cli.app import app

REPO = Path(__file__).resolve().parents[2]
BASE = tomllib.loads((REPO / "examples" / "trials" / "procova_chip_study.toml").read_text())
BASE["simulation"]["n_trials"] = 200  # each accepted case runs: keep it quick
NASTY = st.sampled_from(
    [
        float("nan"),
        float("inf"),
        -1,
        0,
        1,
        1.0,
        -1.0,
        1e300,
        2**62,
        True,
        "",
        "0.5",
        [1],
        {"a": 1},
        0.999999,
        -0.999999,
        100_001,
        1e9,
    ]
)
PATHS = [
    ("name",),
    ("subjects",),
    ("arms", "treatment"),
    ("arms", "control"),
    ("outcome", "sd"),
    ("outcome", "effect"),
    ("outcome", "control_mean"),
    ("prognostic", "correlation"),
    ("simulation", "n_trials"),
    ("simulation", "seed"),
    ("simulation", "alpha"),
    ("arms",),
    ("outcome",),
]
runner = CliRunner()


@st.composite
def trial_documents(draw):
    document = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        parent = document
        for key in path[:-1]:
            parent = parent.setdefault(key, {}) if isinstance(parent, dict) else {}
        if not isinstance(parent, dict):
            continue
        action = draw(st.sampled_from(["replace", "delete", "unknown"]))
        if action == "replace":
            parent[path[-1]] = draw(NASTY)
        elif action == "delete":
            parent.pop(path[-1], None)
        else:
            parent["colour"] = "blue"
    return document


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(document=trial_documents())
def test_a_generated_trial_file_is_simulated_or_refused_in_one_line(tmp_path, document):
    path = tmp_path / "trial.toml"
    try:
        path.write_text(tomli_w.dumps(document))
    except (TypeError, ValueError):  # NaN etc. that tomli_w cannot write: write it by hand
        path.write_text(tomli_w.dumps(BASE).replace("correlation = 0.7", "correlation = nan"))
    out = runner.invoke(app, ["trial", "simulate", str(path), "--json"])
    if out.exit_code == 0:
        assert '"analyses"' in out.stdout
    else:
        assert out.exit_code == 2, out.output
        lines = out.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {path}") and "fix:" in lines[0], out.output
        assert "Traceback" not in out.output
