"""Runs, fits and proposals have one home: no module outside ``store`` issues SQL against their tables."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TABLE_CLASSES = {"ProtocolRun", "Fit", "Proposal", "Approval"}
TABLE_NAMES = re.compile(r"\b(FROM|INTO|UPDATE|JOIN)\s+(protocolrun|fit|proposal|approval)\b", re.IGNORECASE)
SQL_CALLS = {"select", "insert", "update", "delete", "join", "outerjoin", "where", "select_from"}


def offences(source: str) -> list[str]:
    """Each place ``source`` names one of the tables in a query: ``Fit.id``, ``insert(Fit)``, or SQL text."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in TABLE_CLASSES:
            found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in SQL_CALLS:
                found += [
                    f"line {node.lineno}: {name}({a.id})"
                    for a in node.args
                    if isinstance(a, ast.Name) and a.id in TABLE_CLASSES
                ]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and TABLE_NAMES.search(node.value):
            found.append(f"line {node.lineno}: SQL text {node.value[:40]!r}")
    return found


def test_no_module_outside_store_queries_runs_fits_or_proposals():
    product = [
        p
        for package in ("twin", "instruments", "calibration", "protocols", "ui")
        for p in (REPO / package).rglob("*.py")
    ]
    assert len(product) > 100
    bad = {str(p.relative_to(REPO)): found for p in product if (found := offences(p.read_text(encoding="utf-8")))}
    assert bad == {}


def test_the_check_sees_each_way_of_querying():
    """It could pass by finding nothing: each form is caught, and an instance's attribute is not."""
    assert sorted(offences("select(Fit).where(Fit.run_id == 1)")) == ["line 1: Fit.run_id", "line 1: select(Fit)"]
    assert offences("c.execute(insert(Proposal).values(status='x'))") == ["line 1: insert(Proposal)"]
    assert offences("c.exec_driver_sql('UPDATE proposal SET status = 1')")[0].startswith("line 1: SQL text")
    assert offences("row = fits.latest(engine, 1); row.run_id") == []
