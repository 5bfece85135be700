"""The package's layout rules, read from the imports themselves.

Data flows one way: input → plan → run → report, with ``audit`` beside run and its workbooks
in report (every workbook is written there), ``dsc`` as the wire layer under ``run``, the
simulator apart, and ``cli`` on top.  These tests read every
module's imports (module level and inside functions) and fail on an import that crosses a
layer the wrong way, or that reaches into another package's private (underscored) module or
name, so the layout in the README's Development section cannot rot.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "bulkscan"

# Which top-level parts of bulkscan each part may import.  Parts: a subpackage or a module
# directly under bulkscan/.  The shared leaves (config, errors, models, events, i18n) import
# nothing of the pipeline; i18n (the message catalogs) and files (the one atomic writer)
# import nothing of bulkscan at all.
_LEAVES = {"config", "errors", "models", "events", "data", "i18n", "files"}
ALLOWED: dict[str, set[str]] = {
    "data": set(),
    "i18n": set(),
    "files": set(),
    "models": {"i18n"},
    "errors": {"models", "i18n"},
    "config": {"errors", "i18n"},
    "events": {"models", "i18n"},
    "input": _LEAVES,
    "plan": _LEAVES | {"input"},
    "dsc": _LEAVES,
    "run": _LEAVES | {"input", "plan", "dsc"},
    "audit": _LEAVES | {"input", "plan", "run", "dsc"},
    "report": _LEAVES | {"input", "plan", "run", "dsc", "audit"},  # every workbook
    "runner": _LEAVES | {"input", "plan", "run", "dsc", "report", "audit"},
    "sim": _LEAVES | {"dsc"},
    "cli": _LEAVES | {"runner", "input", "plan", "run", "dsc", "report", "audit", "sim"},
    # the DataFrame face (pandas, an optional extra): nothing imports it
    "frames": _LEAVES | {"runner", "input", "plan", "report", "audit"},
}
# The simulator reaches the core only through the explicit --simulate path of the runner.
SIM_DOORS = {"runner"}


def _part(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "bulkscan":
        return None
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every bulkscan import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    top = {id(node) for node in tree.body}
    found: list[tuple[str, int, bool]] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "bulkscan":
                names = [f"bulkscan.{a.name}" for a in node.names]
        found.extend((n, node.lineno, id(node) in top) for n in names if n.startswith("bulkscan"))
    return found


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        owner = rel.parts[0].removesuffix(".py")
        out.append((owner, path))
    return out


def _violations() -> list[str]:
    bad = []
    for owner, path in _modules():
        if owner in {"__init__", "__main__"}:
            continue
        allowed = ALLOWED.get(owner)
        assert allowed is not None, f"{path}: a new top-level part needs a rule in ALLOWED"
        for module, line, top_level in _imports(path):
            part = _part(module)
            if part in (None, "", owner) or part == "__version__":
                continue
            where = f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
            if part == "sim" and owner in SIM_DOORS:
                if top_level:
                    bad.append(f"{where} at module level (only inside the --simulate path)")
                continue
            if part not in allowed:
                bad.append(f"{where} ({owner} may import only {sorted(allowed) or 'nothing'})")
    return bad


def test_every_import_follows_the_layer_rules() -> None:
    assert _violations() == []


@pytest.mark.parametrize(
    ("owner", "forbidden"),
    [("input", "cli"), ("run", "cli"), ("dsc", "run"), ("dsc", "sim"), ("plan", "run")],
)
def test_named_rules_from_the_readme(owner: str, forbidden: str) -> None:
    assert forbidden not in ALLOWED[owner]


def _third_party(path: Path) -> set[str]:
    """The top-level names of every module ``path`` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_only_the_dataframe_face_imports_pandas() -> None:
    """pandas is an optional extra (bulkscan[pandas]): only bulkscan.frames may load it, and
    nothing imports bulkscan.frames."""
    pandas_users = [p for _, p in _modules() if "pandas" in _third_party(p)]
    assert pandas_users == [PACKAGE / "frames.py"]
    frames_users = [
        f"{path.relative_to(PACKAGE.parent)}:{line}"
        for _, path in _modules()
        for module, line, _ in _imports(path)
        if module.startswith("bulkscan.frames")
    ]
    assert frames_users == []


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import os\nfrom bulkscan.cli import main\n\ndef f():\n    import bulkscan.sim\n"
    )
    found = _imports(probe)
    assert ("bulkscan.cli", 2, True) in found
    assert ("bulkscan.sim", 5, False) in found


def _imported_names(path: Path) -> list[tuple[str, int]]:
    """Every bulkscan name ``path`` imports, in full (``from a import b`` is ``a.b``)."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.extend((f"{node.module}.{a.name}", node.lineno) for a in node.names)
    return [(name, line) for name, line in found if name.split(".")[0] == "bulkscan"]


def _private_owner(name: str) -> str | None:
    """The package a private name belongs to: a ``_module`` (or a ``_name`` in a module) is
    for the modules of the package that holds it; None for a name that is not private."""
    parts = name.split(".")
    at = next((i for i, p in enumerate(parts) if p.startswith("_") and not p.startswith("__")), 0)
    if not at:
        return None
    prefix = parts[:at]
    is_module = PACKAGE.parent.joinpath(*prefix).with_suffix(".py").is_file()
    return ".".join(prefix[:-1] if is_module else prefix)


def _privacy_violations(package: Path) -> list[str]:
    bad = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).with_suffix("")
        me = ".".join(rel.parts).removesuffix(".__init__")
        for name, line in _imported_names(path):
            owner = _private_owner(name)
            if owner is not None and me != owner and not me.startswith(owner + "."):
                bad.append(f"{rel}.py:{line} imports {name}, private to {owner}")
    return bad


def test_private_modules_and_names_stay_in_their_package() -> None:
    """A module (or name) with a leading underscore is for its own package alone: the layers
    meet through the modules without one (``bulkscan.sim.server`` is the simulator's door)."""
    assert _privacy_violations(PACKAGE) == []


def test_the_privacy_checker_sees_a_violation(tmp_path: Path) -> None:
    package = tmp_path / "bulkscan"
    (package / "cli").mkdir(parents=True)
    (package / "cli" / "run.py").write_text(
        "from bulkscan.sim import _assets\nfrom bulkscan.cli._common import x\n"
    )
    assert _private_owner("bulkscan.sim._assets.Assets") == "bulkscan.sim"
    assert _private_owner("bulkscan.dsc.client._str_or_none") == "bulkscan.dsc"
    assert _private_owner("bulkscan.run.store.Journal") is None
    assert _privacy_violations(package) == [
        "bulkscan/cli/run.py:1 imports bulkscan.sim._assets, private to bulkscan.sim"
    ]
