"""The README's five-minute tour runs: every command of it, in order, in a fresh folder that holds only
the repository's `examples/` (the data a fresh clone ships), as a newcomer would type them.

The commands are read from README.md, not copied here: a tour edited into something that fails
fails this test. `chiptwin …` runs in this process through the CLI app (one import of the program
instead of one per command); a line ending in `&` starts a real background process, as the shell
would; `cp`, `export`, `kill %1` and the wait for a file do what the shell does. The PostgreSQL block runs against the
test server (a schema of its own) and is skipped loudly without one.
"""

from __future__ import annotations

import gc
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ui.cli.app import app

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SETUP_WORDS = {"make", "."}  # installing: done already for the test run
pytestmark = pytest.mark.timeout(120)


def sh_blocks(after_heading: str) -> list[str]:
    """The ```sh blocks between a README heading and the next heading of the same level."""
    text = README.read_text(encoding="utf-8")
    start = text.index(after_heading)
    end = text.find("\n## ", start + len(after_heading))
    return re.findall(r"```sh\n(.*?)```", text[start : end if end > 0 else None], re.S)


def commands(block: str) -> list[list[str]]:
    """Each command as its words: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [words for line in joined.splitlines() if (words := shlex.split(line, comments=True))]


def tour_blocks() -> tuple[list[list[str]], list[list[str]]]:
    """(the tour on the default SQLite store, the PostgreSQL block)."""
    blocks = sh_blocks("## A five-minute tour")
    postgres = [b for b in blocks if "postgresql" in b]
    sqlite = [b for b in blocks if "postgresql" not in b]
    assert len(sqlite) == 1 and len(postgres) == 1, "the tour has one block, and one for a PostgreSQL lab"
    return commands(sqlite[0]), commands(postgres[0])


class Shell:
    """What the tour's lines need of a shell, in a folder of its own."""

    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.folder, self.monkeypatch = folder, monkeypatch
        self.background: list[subprocess.Popen] = []
        self.ran: list[str] = []
        self.runner = CliRunner()

    def run(self, words: list[str]) -> None:
        line = shlex.join(words)
        if words[0] in SETUP_WORDS:
            return
        self.ran.append(line)
        if words[-1] == "&":
            self._start(words[:-1])
        elif words[0] == "chiptwin":
            result = self.runner.invoke(app, words[1:])
            assert result.exception is None or isinstance(result.exception, SystemExit), (line, result.output)
            assert result.exit_code == 0, f"`{line}` exited {result.exit_code}:\n{result.output}"
            for flag in ("-o", "--out"):
                if flag in words:
                    written = self.folder / words[words.index(flag) + 1]
                    assert written.stat().st_size > 0, f"`{line}` wrote nothing to {written}"
        elif words[0] == "cp" and len(words) == 3:
            shutil.copyfile(self.folder / words[1], self.folder / words[2])
        elif words[0] == "export" and "=" in words[1]:
            name, _, value = words[1].partition("=")
            self.monkeypatch.setenv(name, value)
        elif words == ["kill", "%1"]:
            self.stop()
        elif words[:4] == ["while", "[", "!", "-e"]:  # while [ ! -e FILE ]; do sleep …; done
            self._wait_for(self.folder / words[4])
        else:
            raise AssertionError(f"the tour test does not know how to run `{line}`; teach it or change the tour")

    def _start(self, words: list[str]) -> None:
        assert words[0] == "chiptwin", words
        executable = Path(sys.executable).parent / "chiptwin"
        command = [str(executable)] if executable.exists() else [sys.executable, "-m", "ui.cli.app"]
        process = subprocess.Popen(
            [*command, *words[1:]], cwd=self.folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.background.append(process)

    def _wait_for(self, path: Path, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not path.exists():
            for process in self.background:
                assert process.poll() is None, f"{process.args} exited: {process.stderr.read()}"
            assert time.monotonic() < deadline, f"no {path.name} after {timeout_s:.0f} s"
            time.sleep(0.1)

    def stop(self) -> None:
        for process in self.background:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=15)
            process.stderr.close()
        self.background.clear()


@pytest.fixture
def fresh_clone(tmp_path, monkeypatch) -> Path:
    """A folder with the repository's examples and nothing else; the default store (./chiptwin.db) there."""
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHIPTWIN_DB", raising=False)
    monkeypatch.setenv("COLUMNS", "160")
    return tmp_path


def test_the_tour_runs_from_a_fresh_clone(fresh_clone, monkeypatch):
    tour, _ = tour_blocks()
    shell = Shell(fresh_clone, monkeypatch)
    try:
        for words in tour:
            shell.run(words)
    finally:
        shell.stop()
    assert len(shell.ran) >= 12 and sum(line.startswith("chiptwin fit") for line in shell.ran) == 2
    assert (fresh_clone / "chiptwin.db").exists()  # the default store, made by `db upgrade`
    assert not any("../" in line for line in shell.ran), "the tour reads only what the repository ships"


@pytest.mark.postgres
@pytest.mark.filterwarnings("ignore::ResourceWarning")  # see the gc.collect() below
def test_the_postgresql_lines_of_the_tour_run(fresh_clone, monkeypatch, postgres_url):
    _, lines = tour_blocks()
    assert lines[0][0] == "export" and lines[0][1].startswith("CHIPTWIN_DB="), "name the database first"
    assert lines[1][:3] == ["chiptwin", "db", "upgrade"], "then create its schema, before anything reads it"
    shell = Shell(fresh_clone, monkeypatch)
    for words in lines:
        if words[0] == "export":  # the test server's own schema stands in for the lab's database
            words = ["export", f"CHIPTWIN_DB={postgres_url}"]
        shell.run(words)
    assert not (fresh_clone / "chiptwin.db").exists()  # every command used PostgreSQL
    # A command's engine lives as long as its process; run in this one, its connections are closed
    # by the collector: here, under this test's filter, not at the end of the session.
    gc.collect()
