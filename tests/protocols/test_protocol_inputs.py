"""Protocol files as a careless or hurried user writes them (#15, protocol files): every one
either passes `chiptwin protocol check` or is refused with one line per problem and exit 2 —
never a traceback, never a hang, never a silent acceptance of nonsense.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.protocols.conftest import EXAMPLES, LIVER4
from ui.cli.app import app

BASE = (EXAMPLES / "overnight_dosing.toml").read_text(encoding="utf-8")
cli = CliRunner()


def _check(path) -> tuple[int, str]:  # noqa: ANN001
    result = cli.invoke(app, ["protocol", "check", str(path), "--rig", str(LIVER4)], env={"COLUMNS": "250"})
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output


def _step(body: str) -> str:
    return BASE + "\n[[steps]]\n" + body


REFUSED = {
    "wait of 1e300 h": (_step('kind = "wait"\nduration = "1e300 h"\n'), "more than a year"),
    "clock_rate as text": (BASE.replace("clock_rate = 3600", 'clock_rate = "fast"'), "clock_rate 'fast'"),
    "repeat 1e9 times": (
        _step('kind = "repeat"\ncount = 1000000000\n[[steps.steps]]\nkind = "wait"\nduration = "1 h"\n'),
        "more than 10,000",
    ),
    "repeats unrolling to 1e8 steps": (
        _step(
            'kind = "repeat"\ncount = 10000\n[[steps.steps]]\nkind = "repeat"\n'
            'count = 10000\n[[steps.steps.steps]]\nkind = "wait"\nduration = "1 s"\n'
        ),
        "unrolls to 100,000,010 steps",
    ),
    "a decade of waits": (
        _step('kind = "repeat"\ncount = 20\n[[steps.steps]]\nkind = "wait"\nduration = "8000 h"\n'),
        "more than a year",
    ),
    "one chip twice in a dose": (
        _step('kind = "dose"\nconcentration = "5 uM"\nchips = ["chip1", "chip1"]\n'),
        "'chip1' more than once",
    ),
    "sample of 0 uL": (_step('kind = "sample"\nvolume = "0 uL"\nchips = ["chip1"]\n'), "which does nothing"),
    "media change of 1e9 mL": (_step('kind = "media_change"\nvolume = "1e9 mL"\n'), "more than a litre"),
    "media change above the chip": (_step('kind = "media_change"\nvolume = "5 mL"\n'), "more than chip"),
    "empty protocol name": (BASE.replace('name = "overnight dosing"', 'name = ""'), "protocol name is empty"),
    "empty drug name": (BASE.replace('name = "acetaminophen"', 'name = "  "'), "drug name is empty"),
    "NaN interlock": (BASE.replace('"pressure > 250 mbar', '"pressure > nan mbar'), "not a finite number"),
    # found by the fuzz suite: pint raised AssertionError on ':' and TokenError on ')'
    "a colon for a quantity": (BASE.replace('"151.16 g/mol"', '":"'), "is not a quantity pint can read"),
    "a bracket for a quantity": (BASE.replace('"151.16 g/mol"', '")"'), "is not a quantity pint can read"),
    "an exponent tower": (BASE.replace('"151.16 g/mol"', '"9**9**9 g/mol"'), "is not a quantity a protocol states"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_nonsense_is_refused_with_one_line_naming_it(tmp_path, case) -> None:
    text, expected = REFUSED[case]
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    code, output = _check(path)
    assert code == 2, output
    assert expected in output
    assert all(line.startswith("error: p.toml") for line in output.strip().splitlines()), output


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"\xff\xfe[protocol]\n", "is not UTF-8 text (byte 0xff at offset 0)"),
        (b"", "is empty"),
        (None, "is a directory"),
    ],
)
def test_unreadable_files_get_one_line_through_the_real_command(tmp_path, content, expected) -> None:
    path = tmp_path / "p.toml"
    path.mkdir() if content is None else path.write_bytes(content)
    done = subprocess.run(
        [sys.executable, "-m", "ui.cli.app", "protocol", "check", str(path), "--rig", str(LIVER4)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert expected in done.stderr and len(done.stderr.strip().splitlines()) == 1


# -- fuzz: mutate one value of a valid protocol at a time ---------------------------------------
VALUE = re.compile(r'(?m)^(\s*[a-z_]+\s*=\s*)(".*?"|[-\d.e+]+|\[.*\])\s*$')
SLOTS = [m.span(2) for m in VALUE.finditer(BASE)]
JUNK = st.one_of(
    st.sampled_from(
        [
            '"nan uL"',
            '"inf h"',
            '"-1 uM"',
            '"0 uL"',
            '"1e300 h"',
            '"10 kg"',
            '""',
            '"   "',
            "1e9",
            "-1",
            "0",
            "true",
            "[]",
            '["chip1", "chip1"]',
            '["chip9"]',
            '"10"',
            '"10 uM uM"',
            '"\\u00b5"',
            "1000000000",
            '"oxygen < nan % -> alarm"',
            '["nan mbar"]',
        ]
    ),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters='"\\\n\r'), max_size=12).map(
        lambda s: f'"{s}"'
    ),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)
COUNTS = {"tried": 0, "refused": 0, "accepted": 0}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(slot=st.sampled_from(SLOTS), junk=JUNK)
def test_fuzzed_protocols_are_accepted_or_refused_cleanly(tmp_path_factory, slot, junk) -> None:
    start, end = slot
    path = tmp_path_factory.mktemp("fuzz") / "p.toml"
    path.write_text(BASE[:start] + junk + BASE[end:], encoding="utf-8")
    code, output = _check(path)  # asserts: no exception escaped the command
    COUNTS["tried"] += 1
    COUNTS["refused" if code == 2 else "accepted"] += 1
    assert code in (0, 2), output
    if code == 2:
        assert output.strip() and all(line.startswith("error: ") for line in output.strip().splitlines()), output
    else:
        assert "valid; dry run" in output


def test_fuzz_counts_are_reported() -> None:
    # runs after the fuzz test in file order; the figures go to the -rA / -s output for the issue note
    print(f"protocol fuzz: {COUNTS}")
    assert COUNTS["tried"] == 0 or COUNTS["refused"] > 0
