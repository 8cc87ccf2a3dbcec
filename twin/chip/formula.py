"""Evaluate the SBML-L3 infix strings of a ``ModelSpec`` numerically, safely.

The spec strings are the contract (MODELS.md); this turns them into numpy functions so
that (a) models with no hand-written right-hand side (``multi_organ``) can be simulated
straight from their contract, and (b) the hand-written fast path of ``liver_chip`` can be
checked against it. Only arithmetic, ``^`` powers, names and a few whitelisted functions
are accepted: anything else is refused rather than executed.
"""

from __future__ import annotations

import ast
from typing import Callable, Mapping

import numpy as np

from twin.errors import InvalidValueError

Namespace = Mapping[str, np.ndarray | float]

_FUNCTIONS: dict[str, Callable] = {
    "exp": np.exp,
    "ln": np.log,
    "log": np.log,
    "sqrt": np.sqrt,
    "pow": np.power,
    "abs": np.abs,
}
_NODES = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.Call,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.Pow,
    ast.USub,
    ast.UAdd,
)


def parse(formula: str) -> ast.Expression:
    """Parse an SBML-L3 infix formula (``^`` is power) into a vetted Python AST."""
    tree = ast.parse(formula.replace("^", "**"), mode="eval")
    for node in ast.walk(tree):
        if not isinstance(node, _NODES):
            raise InvalidValueError(f"formula {formula!r}: {type(node).__name__} is not allowed in a model formula")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS):
            raise InvalidValueError(f"formula {formula!r}: only the functions {sorted(_FUNCTIONS)} are allowed")
    return tree


def names_in(formula: str) -> set[str]:
    """The variable names a formula reads (function names excluded)."""
    tree = parse(formula)
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - called


def compile_formula(formula: str) -> Callable[[Namespace], np.ndarray | float]:
    """Return ``f(namespace) -> value``; works elementwise on numpy (also complex) arrays."""
    code = compile(parse(formula), f"<formula {formula}>", "eval")

    def evaluate(namespace: Namespace) -> np.ndarray | float:
        return eval(code, {"__builtins__": {}}, {**_FUNCTIONS, **namespace})  # vetted AST only

    return evaluate


def evaluate(formula: str, namespace: Namespace) -> np.ndarray | float:
    """One-off evaluation of a formula in a namespace of names to numbers or arrays."""
    return compile_formula(formula)(namespace)
