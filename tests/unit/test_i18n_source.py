"""The source calls gettext where it can: no function hides ``_`` behind a local of its own."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "bulkscan"
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _names(node: ast.AST) -> list[ast.Name]:
    """The ``_`` names of ``node``'s own scope: not of the functions or classes inside it,
    nor bound by its comprehensions (their reads of ``_`` are the scope's reads)."""
    found: list[ast.Name] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, _SCOPES):
            continue
        if isinstance(child, _COMPREHENSIONS):
            found += [
                n for n in ast.walk(child)
                if isinstance(n, ast.Name) and n.id == "_" and isinstance(n.ctx, ast.Load)
            ]  # fmt: skip
            continue
        if isinstance(child, ast.Name) and child.id == "_":
            found.append(child)
        found += _names(child)
    return found


def test_no_function_binds_the_name_it_translates_with() -> None:
    """``for _ in ...`` in a function that also calls ``_("...")`` makes ``_`` a local there:
    the message then fails with UnboundLocalError instead of being said."""
    shadowing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            names = _names(function)
            binds = any(isinstance(n.ctx, ast.Store | ast.Del) for n in names)
            if binds and any(isinstance(n.ctx, ast.Load) for n in names):
                shadowing.append(f"{path.relative_to(PACKAGE.parent)}:{function.lineno}")
    assert shadowing == []
