"""The house holds its shape: an instant command line, no import circles, the layers import-linter keeps."""

from __future__ import annotations

import json
import subprocess
import sys

import grimp
import pytest

PACKAGES = ("twin", "instruments", "calibration", "protocols", "store", "ui")
# pydantic is not in the list: typer 0.29 itself imports it to build a command's parameters
HEAVY = ("numpy", "scipy", "pandas", "matplotlib", "sqlalchemy", "streamlit", "pint", "pymodbus", "emcee", "dask")


def _modules_loaded_by(code: str) -> set[str]:
    """The top-level modules a fresh interpreter has after ``code`` (nothing of this process leaks in)."""
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_importing_the_command_line_loads_no_heavy_library():
    loaded = _modules_loaded_by("import ui.cli.app")
    assert not loaded & set(HEAVY), f"ui.cli.app pulls in {sorted(loaded & set(HEAVY))}"
    assert not loaded & {"instruments", "calibration", "protocols", "store"}


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["fit", "--help"],
        ["run", "--help"],
        ["devices", "check", "--help"],
        ["protocol", "check", "--help"],
        ["audit", "verify", "--help"],
        ["--version"],
    ],
)
def test_help_and_version_print_without_heavy_libraries(argv):
    code = (
        "import sys\nfrom ui.cli.app import app\n"
        f"try:\n    app({argv!r})\nexcept SystemExit as stop:\n    assert stop.code in (0, None), stop.code"
    )
    loaded = _modules_loaded_by(code)
    assert not loaded & set(HEAVY), f"chiptwin {' '.join(argv)} loads {sorted(loaded & set(HEAVY))}"


def test_version_names_the_installed_package():
    out = subprocess.run([sys.executable, "-m", "ui.cli.app", "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("chiptwin 0."), out


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), runtime imports only."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_circles_even_through_imports_inside_functions():
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)
    assert _cycles(graph) == []


def test_the_cycle_finder_sees_a_circle(tmp_path, monkeypatch):
    """The check above could pass by never finding anything: show it finds a planted two-module circle."""
    package = tmp_path / "circle_demo"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from circle_demo import b\n")
    (package / "b.py").write_text("import circle_demo.a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _cycles(grimp.build_graph("circle_demo")) == [["circle_demo.a", "circle_demo.b"]]
